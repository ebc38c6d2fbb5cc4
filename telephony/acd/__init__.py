"""The ACD: agents (directory, registration, state) and queues shared by every worker.

``directory`` reads the agents file (credentials hashed, skills, rights); ``store`` keeps agent
state and queue entries in the database every worker and ``serve`` share, so one agent is
claimed by one call at a time across processes; ``queue_call`` takes one caller from the queue
to a bridged agent.
"""
