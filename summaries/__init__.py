"""After the call: PII redaction, summaries, the CRM store, its REST API and the webhook outbox.

Data flows one way (telephony → speech → events → summaries); nothing here imports telephony,
ivr, callcenter or live. Modules: ``redact`` (Redactor), ``summarizer`` (offline ``summarize``),
``llm_summarizer`` (LlmSummarizer with offline fallback), ``summary`` (CallSummary), ``store``
(CrmStore), ``durable_writer`` (DurableWriter), ``webhook`` (WebhookOutbox), ``api``
(create_api), ``report`` (CLI text), ``after_call`` (the chain run at CallEnded).
"""
