"""SIPREC (RFC 7866) recording sessions: the INVITE body, its metadata, and who speaks on which stream.

A PBX or SBC (the SRC) forks an agent call to us (the SRS) with an INVITE whose body is
``multipart/mixed``: an SDP offer with one ``m=audio`` per forked stream (each ``a=label``,
``sendonly``) and an ``application/rs-metadata+xml`` document (RFC 7865) naming the participants,
the streams by label, and which participant sends which stream. Pure Python (``email`` for MIME,
``ElementTree`` for the XML): the endpoint parses on the PJSIP thread, tests parse from files.

Which participant is the agent is the service's rule (``SiprecRules``): an AOR regex, or the AOR's
user part being an id of the agents directory; otherwise the first participant is the caller.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from speech.frames import Party

NS = "urn:ietf:params:xml:ns:recording:1"
"""RFC 7865's XML namespace."""
METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")
"""The registered type, and the one RFC 7866's own examples use."""
MAX_BODY_BYTES = 16_000
"""Larger bodies are refused before parsing (pjsip reads 4000-byte messages anyway)."""
MAX_PARTICIPANTS = 16
MAX_STREAMS = 8

_Q = f"{{{NS}}}"
_SRC_TAG = re.compile(r"^(?:Contact|m)[ \t]*:[^\r\n]*;[ \t]*\+sip\.src\b", re.I | re.M)
_CONTENT_TYPE = re.compile(r"^(?:Content-Type|c)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_URI_USER = re.compile(r"^(?:sips?|tel):([^@;>]+)", re.I)


class SiprecError(ValueError):
    """A recording session's body could not be used; ``status``/``reason`` are the SIP answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    @property
    def reason(self) -> str:
        """A reason phrase naming the problem (no user data: only our own words)."""
        return f"Bad SIPREC body: {self.args[0]}"[:100]


@dataclass(frozen=True, slots=True)
class Participant:
    participant_id: str
    aor: str = ""
    name: str = ""
    send: tuple[str, ...] = ()
    """Stream ids this participant sends (``participantstreamassoc``)."""
    recv: tuple[str, ...] = ()

    @property
    def user(self) -> str:
        """The AOR's user part (``sip:1001@pbx`` → ``1001``), or ""."""
        m = _URI_USER.match(self.aor.strip())
        return m.group(1) if m else ""


@dataclass(frozen=True, slots=True)
class Stream:
    stream_id: str
    label: str
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class Metadata:
    """What RFC 7865 metadata says (the parts this service uses)."""

    session_id: str = ""
    sip_session_id: str = ""
    participants: tuple[Participant, ...] = ()
    streams: tuple[Stream, ...] = ()

    def sender_of(self, label: str) -> Participant | None:
        """The participant who sends the stream with SDP ``a=label:<label>``."""
        ids = {s.stream_id for s in self.streams if s.label == label}
        return next((p for p in self.participants if ids & set(p.send)), None)


@dataclass(frozen=True, slots=True)
class SdpStream:
    """One ``m=audio`` line of the offer, in order (its position is pjsua's media index)."""

    index: int
    port: int
    label: str = ""
    direction: str = "sendrecv"
    codecs: tuple[str, ...] = ()
    """``PCMU/8000``-style names, in offer order."""


@dataclass(frozen=True, slots=True)
class RecordingOffer:
    """A SIPREC INVITE's (or re-INVITE's) body, parsed."""

    streams: tuple[SdpStream, ...]
    metadata: Metadata | None
    sdp: str = field(repr=False, default="")


@dataclass(frozen=True, slots=True)
class StreamRole:
    """Who speaks on one offered stream, as the service sees them."""

    index: int
    label: str
    party: Party
    participant_id: str = ""
    agent_id: str = ""
    """The agent's id in the agents directory ("" when unknown or a caller)."""


@dataclass(frozen=True, slots=True)
class SiprecRules:
    """Which participant is the agent: ``agent_aor`` (a regex searched in the AOR) and/or the
    AOR's user part being one of ``agent_ids``; when neither matches anyone, the first
    participant is the caller and the others are agents."""

    agent_aor: str = ""
    agent_ids: frozenset[str] = frozenset()

    def is_agent(self, p: Participant) -> bool:
        if self.agent_aor and re.search(self.agent_aor, p.aor):
            return True
        return bool(p.user) and p.user in self.agent_ids

    def agent_id(self, p: Participant) -> str:
        return p.user if p.user in self.agent_ids else ""

    def roles(self, offer: RecordingOffer) -> tuple[StreamRole, ...]:
        """A party for every offered stream: by the metadata's sender of its label; without
        metadata (or an unknown label), the first stream is the caller, the second the agent."""
        md = offer.metadata
        senders = [md.sender_of(s.label) if md is not None and s.label else None for s in offer.streams]
        known = list(md.participants) if md else []
        any_rule = any(self.is_agent(p) for p in known)
        first = known[0].participant_id if known else ""
        out = []
        for pos, (s, p) in enumerate(zip(offer.streams, senders, strict=True)):
            if p is None:
                party = Party.CALLER if pos == 0 else Party.AGENT
                out.append(StreamRole(s.index, s.label, party))
                continue
            agent = self.is_agent(p) if any_rule else p.participant_id != first
            out.append(StreamRole(s.index, s.label, Party.AGENT if agent else Party.CALLER, p.participant_id,
                                  self.agent_id(p) if agent else ""))
        return tuple(out)


def is_recording_invite(whole_msg: str) -> bool:
    """An RFC 7866 recording session: ``+sip.src`` in Contact, or rs-metadata in the body."""
    head = whole_msg.split("\r\n\r\n", 1)[0]
    if _SRC_TAG.search(head):
        return True
    m = _CONTENT_TYPE.search(head)
    if m is None or "multipart/" not in m.group(1).lower():
        return False
    return any(t in whole_msg[len(head):].lower() for t in METADATA_TYPES)


def parse_message(whole_msg: str) -> RecordingOffer:
    """The SDP streams and metadata of a SIP request (head and body as pjsip received them)."""
    raw = whole_msg.encode("utf-8", "surrogateescape")
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    m = _CONTENT_TYPE.search(head.decode("latin-1"))
    if m is None:
        raise SiprecError("no Content-Type", status=415)
    return parse_body(m.group(1).strip(), body)


def parse_body(content_type: str, body: bytes) -> RecordingOffer:
    """Parse a ``multipart/mixed`` (or bare ``application/sdp``) body."""
    if len(body) > MAX_BODY_BYTES:
        raise SiprecError(f"body of {len(body)} bytes is over {MAX_BODY_BYTES}", status=413)
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/sdp":
        sdp = body.decode("utf-8", "replace")
        return RecordingOffer(parse_sdp(sdp), None, sdp)
    if not ctype.startswith("multipart/"):
        raise SiprecError(f"unsupported Content-Type {ctype[:40]}", status=415)
    msg = BytesParser(policy=compat32).parsebytes(b"Content-Type: " + content_type.encode("latin-1")
                                                  + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise SiprecError("multipart body without parts (boundary missing or wrong)")
    parts = [p for p in msg.walk() if not p.is_multipart()]
    sdps = [p for p in parts if p.get_content_type() == "application/sdp"]
    metas = [p for p in parts if p.get_content_type() in METADATA_TYPES]
    if len(sdps) != 1:
        raise SiprecError(f"{len(sdps)} SDP parts (one expected)", status=488 if not sdps else 400)
    if len(metas) > 1:
        raise SiprecError("more than one metadata part")
    sdp = _text(sdps[0])
    streams = parse_sdp(sdp)
    metadata = parse_metadata(_text(metas[0])) if metas else None
    if metadata is not None:
        labels = {s.label for s in metadata.streams}
        missing = [s.label for s in streams if s.label and s.label not in labels and metadata.streams]
        if missing:
            raise SiprecError(f"SDP labels {missing[:4]} are not in the metadata")
    return RecordingOffer(streams, metadata, sdp)


@dataclass
class _MLine:
    port: int
    pts: list[str]
    label: str = ""
    direction: str | None = None
    rtpmap: dict[str, str] = field(default_factory=dict)


def parse_sdp(sdp: str) -> tuple[SdpStream, ...]:
    """The ``m=audio`` lines of an SDP with their label, direction and codecs."""
    session_dir = "sendrecv"
    streams: list[_MLine] = []
    cur: _MLine | None = None
    seen_m = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if line.startswith("m="):
            seen_m, cur = True, None
            fields = line[2:].split()
            if len(fields) < 4:
                raise SiprecError("malformed m= line in SDP", status=488)
            if fields[0] == "audio":
                try:
                    port = int(fields[1].split("/")[0])
                except ValueError:
                    raise SiprecError("malformed m= port in SDP", status=488) from None
                cur = _MLine(port, fields[3:])
                streams.append(cur)
        elif line.startswith("a="):
            attr, _, value = line[2:].partition(":")
            if attr in ("sendonly", "recvonly", "sendrecv", "inactive"):
                if not seen_m:
                    session_dir = attr
                elif cur is not None:
                    cur.direction = attr
            elif cur is not None and attr == "label":
                cur.label = value.strip()
            elif cur is not None and attr == "rtpmap":
                pt, _, name = value.partition(" ")
                cur.rtpmap[pt.strip()] = name.strip()
    if not streams:
        raise SiprecError("no m=audio in SDP", status=488)
    if len(streams) > MAX_STREAMS:
        raise SiprecError(f"{len(streams)} audio streams (at most {MAX_STREAMS})", status=488)
    return tuple(
        SdpStream(i, m.port, m.label, m.direction or session_dir,
                  tuple(m.rtpmap.get(pt) or _STATIC.get(pt, pt) for pt in m.pts))
        for i, m in enumerate(streams))


_STATIC = {"0": "PCMU/8000", "8": "PCMA/8000", "9": "G722/8000", "3": "GSM/8000", "4": "G723/8000",
           "18": "G729/8000"}


def parse_metadata(xml: str) -> Metadata:
    """RFC 7865 metadata (``complete`` or ``partial``; partial updates are read the same way)."""
    if len(xml) > MAX_BODY_BYTES:
        raise SiprecError("metadata too large", status=413)
    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise SiprecError("DTDs and entities are not accepted in metadata")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise SiprecError(f"metadata is not well-formed XML ({exc.position[0]}:{exc.position[1]})") from None
    if root.tag != f"{_Q}recording":
        raise SiprecError(f"metadata root is not <recording> in {NS}")
    session = root.find(f"{_Q}session")
    streams = []
    for el in root.findall(f"{_Q}stream"):
        sid = el.get("stream_id", "")
        label = (el.findtext(f"{_Q}label") or "").strip()
        if not sid or not label:
            raise SiprecError("<stream> without stream_id or label")
        streams.append(Stream(sid, label, el.get("session_id", "")))
    sends: dict[str, list[str]] = {}
    recvs: dict[str, list[str]] = {}
    for el in root.findall(f"{_Q}participantstreamassoc"):
        pid = el.get("participant_id", "")
        if not pid:
            raise SiprecError("<participantstreamassoc> without participant_id")
        sends.setdefault(pid, []).extend((s.text or "").strip() for s in el.findall(f"{_Q}send"))
        recvs.setdefault(pid, []).extend((s.text or "").strip() for s in el.findall(f"{_Q}recv"))
    participants = []
    for el in root.findall(f"{_Q}participant"):
        pid = el.get("participant_id", "")
        if not pid:
            raise SiprecError("<participant> without participant_id")
        name_id = el.find(f"{_Q}nameID")
        aor = name_id.get("aor", "") if name_id is not None else ""
        name = (name_id.findtext(f"{_Q}name") or "").strip() if name_id is not None else ""
        # RFC 7865 drafts put send/recv inside <participant>; accept both places
        send = sends.get(pid, []) + [(s.text or "").strip() for s in el.findall(f"{_Q}send")]
        recv = recvs.get(pid, []) + [(s.text or "").strip() for s in el.findall(f"{_Q}recv")]
        participants.append(Participant(pid, aor, name, tuple(send), tuple(recv)))
    if len(participants) > MAX_PARTICIPANTS or len(streams) > MAX_STREAMS:
        raise SiprecError("too many participants or streams in metadata")
    return Metadata(
        session_id=session.get("session_id", "") if session is not None else "",
        sip_session_id=" ".join((session.findtext(f"{_Q}sipSessionID") or "").split()) if session is not None else "",
        participants=tuple(participants), streams=tuple(streams),
    )


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise SiprecError("unreadable body part")
    return payload.decode(part.get_content_charset() or "utf-8", "replace")


def label_answer(sdp: str, labels: list[str]) -> str:
    """Our answer SDP with ``a=label:<label>`` on its i-th ``m=`` section (RFC 7866 § 7.1.1:
    the SRS answers with the labels of the offer)."""
    nl = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(nl)
    out: list[str] = []
    m_index = -1

    def close_section() -> None:
        if 0 <= m_index < len(labels) and labels[m_index]:
            while out and out[-1] == "":
                out.pop()
            out.append(f"a=label:{labels[m_index]}")

    for line in lines:
        if line.startswith("m="):
            close_section()
            m_index += 1
        if line.startswith("a=label:"):
            continue
        out.append(line)
    close_section()
    text = nl.join(out)
    return text if text.endswith(nl) else text + nl
