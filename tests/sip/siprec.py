"""sipp as a SIPREC recording client (SRC, RFC 7866): scenario files written from parameters.

The INVITE carries ``Require: siprec``, ``+sip.src`` in Contact and a ``multipart/mixed`` body (SDP
with one sendonly ``m=audio`` per stream, ``a=label``, plus RFC 7865 metadata). sipp plays the
first stream's pcap itself (``play_pcap_audio`` goes to the first ``m=audio`` of our answer) and
runs ``tests/sip/rtp_tools.py send`` for the second, to the port an ``<ereg>`` read from our
answer. Updates are re-INVITEs with new metadata (another agent: a transfer) or ``a=inactive``
(a hold). sipp checks that our answer has every ``a=label`` (and ``+sip.srs`` when asked).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = Path(__file__).resolve().parent / "rtp_tools.py"
BOUNDARY = "OSS-unique-boundary-42"
PT = {"PCMU": 0, "PCMA": 8}


@dataclass(frozen=True)
class Person:
    participant_id: str
    aor: str
    name: str


@dataclass(frozen=True)
class Update:
    """A re-INVITE ``after_ms`` after the previous step: ``agent`` now sends the agent stream
    (None: unchanged); ``direction`` of every stream (``inactive``: a hold)."""

    after_ms: int
    agent: Person | None = None
    direction: str = "sendonly"
    method: str = "INVITE"
    """``INVITE`` (a re-INVITE, then ACK) or ``UPDATE`` (RFC 3311, no ACK)."""


CALLER = Person("caller-p", "sip:+15550001111@pbx.example.com", "Customer")
ALICE = Person("alice-p", "sip:alice@pbx.example.com", "Alice")
BOB = Person("bob-p", "sip:bob@pbx.example.com", "Bob")


@dataclass(frozen=True)
class SiprecCall:
    codecs: tuple[str, ...] = ("PCMU", "PCMU")
    """One per stream: stream 1 (label 1) is the caller's, stream 2 (label 2) the agent's."""
    caller: Person = CALLER
    agent: Person = ALICE
    updates: tuple[Update, ...] = ()
    end_ms: int = 5000
    """Pause after the last update (or the ACK) before BYE."""
    metadata: str | None = None
    """Replace the metadata document (malformed-body tests)."""
    expect: int = 200
    check_srs: bool = False
    """Expect ``+sip.srs`` in our answer's Contact (the front adds it)."""
    pcaps: tuple[str, ...] = field(default=("caller.pcap", "agent.pcap"))


def metadata_xml(caller: Person, agent: Person | None, streams: int) -> str:
    """RFC 7865 metadata: the caller sends label 1, the agent label 2 (when there are two)."""
    parts = [caller] + ([agent] if agent is not None and streams > 1 else [])
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>",
           "<datamode>complete</datamode>",
           '<session session_id="hVpd7YQgRW2nD22h7q60JQ=="><sipSessionID>ab30317f1a784dc48ff824d0d3715d86'
           "</sipSessionID></session>"]
    for p in parts:
        out.append(f'<participant participant_id="{p.participant_id}"><nameID aor="{p.aor}">'
                   f"<name>{p.name}</name></nameID></participant>")
    for i in range(streams):
        out.append(f'<stream stream_id="s{i + 1}" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>{i + 1}</label></stream>')
    for i, p in enumerate(parts):
        others = [f"<recv>s{j + 1}</recv>" for j in range(streams) if j != i]
        out.append(f'<participantstreamassoc participant_id="{p.participant_id}"><send>s{i + 1}</send>'
                   f"{''.join(others)}</participantstreamassoc>")
    out.append("</recording>")
    return "\n".join(out)


def _sdp(codecs: tuple[str, ...], version: int, direction: str) -> str:
    lines = ["v=0", f"o=SRC 2890844526 {2890844526 + version} IN IP4 [local_ip]", "s=-",
             "c=IN IP4 [media_ip]", "t=0 0"]
    for i, codec in enumerate(codecs):
        port = "[media_port]" if i == 0 else f"[media_port+{2 * i}]"
        lines += [f"m=audio {port} RTP/AVP {PT[codec]}", f"a=rtpmap:{PT[codec]} {codec}/8000",
                  f"a=label:{i + 1}", f"a={direction}"]
    return "\n".join(lines)


def _body(codecs: tuple[str, ...], xml: str, version: int, direction: str) -> str:
    return (f"--{BOUNDARY}\nContent-Type: application/sdp\n\n{_sdp(codecs, version, direction)}\n\n"
            f"--{BOUNDARY}\nContent-Type: application/rs-metadata+xml\nContent-Disposition: recording-session\n\n"
            f"{xml}\n--{BOUNDARY}--\n")


def _invite(uri: str, cseq: int, body: str, first: bool, method: str = "INVITE") -> str:
    to_tag = "" if first else "[peer_tag_param]"
    return f"""  <send retrans="500">
    <![CDATA[

      {method} {uri} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "SRC" <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:src@[local_ip]:[local_port]>;+sip.src
      Max-Forwards: 70
      Require: siprec
      Accept: application/sdp, application/rs-metadata+xml
      Content-Type: multipart/mixed;boundary={BOUNDARY}
      Content-Length: [len]

{body}
    ]]>
  </send>
"""


def _ack(cseq: int) -> str:
    return f"""  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "SRC" <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def write_scenario(path: Path, call: SiprecCall) -> Path:
    """Write the SRC scenario of ``call`` to ``path`` (sipp ``-sf``)."""
    n = len(call.codecs)
    xml = call.metadata if call.metadata is not None else metadata_xml(call.caller, call.agent, n)
    out = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<!DOCTYPE scenario SYSTEM "sipp.dtd">',
           '<scenario name="siprec src">']
    out.append(_invite("sip:[service]@[remote_ip]:[remote_port]", 1, _body(call.codecs, xml, 0, "sendonly"), True))
    out.append('  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>')
    if call.expect != 200:
        out.append(f'  <recv response="{call.expect}"/>')
        out.append(_ack(1).replace("[next_url]", "sip:[service]@[remote_ip]:[remote_port]"))
        out.append("</scenario>")
        path.write_text("\n".join(out))
        return path
    checks = ['      <ereg regexp="m=audio ([0-9]+)" search_in="body" check_it="true" assign_to="m1,p1"/>']
    if n > 1:
        checks.append('      <ereg regexp="m=audio [0-9]+ .*m=audio ([0-9]+)" search_in="body" check_it="true" '
                      'assign_to="m2,p2"/>')
    for i in range(n):
        checks.append(f'      <ereg regexp="a=label:{i + 1}" search_in="body" check_it="true" assign_to="l{i + 1}"/>')
    checks.append('      <ereg regexp="a=recvonly" search_in="body" check_it="true" assign_to="ro"/>')
    if call.check_srs:
        checks.append('      <ereg regexp="[+]sip[.]srs" search_in="hdr" header="Contact:" check_it="true" '
                      'assign_to="srs"/>')
    names = re.findall(r'assign_to="([^"]+)"', "\n".join(checks))
    used = "".join(f"[${v}]" for n in names for v in n.split(","))
    checks.append(f'      <log message="answer checked {used}"/>')  # sipp refuses unused variables
    out.append('  <recv response="200" rrs="true">\n    <action>\n' + "\n".join(checks) + "\n    </action>\n  </recv>")
    out.append(_ack(1))
    out.append(f'  <nop>\n    <action>\n      <exec play_pcap_audio="{call.pcaps[0]}"/>\n    </action>\n  </nop>')
    if n > 1:
        cmd = f"{sys.executable} {TOOLS} send {call.pcaps[1]} [media_ip] [$p2]"
        out.append(f'  <nop>\n    <action>\n      <exec command="{cmd}"/>\n    </action>\n  </nop>')
    agent = call.agent
    for k, up in enumerate(call.updates, start=2):
        out.append(f'  <pause milliseconds="{up.after_ms}"/>')
        agent = up.agent or agent
        body = _body(call.codecs, metadata_xml(call.caller, agent, n), k, up.direction)
        out.append(_invite("[next_url]", k, body, False, up.method))
        out.append('  <recv response="100" optional="true"/>\n  <recv response="200"/>')
        if up.method == "INVITE":
            out.append(_ack(k))
    out.append(f'  <pause milliseconds="{call.end_ms}"/>')
    cseq = len(call.updates) + 2
    out.append(f"""  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "SRC" <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <timewait milliseconds="500"/>""")
    out.append("</scenario>")
    path.write_text("\n".join(out))
    return path
