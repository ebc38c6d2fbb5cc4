"""SIPREC bodies (telephony/siprec.py): the RFCs' examples, the party rule, malformed and oversized bodies.

``tests/data/siprec/rfc7866_invite.txt`` is the INVITE example of RFC 7866 (two streams labelled
96 and 97, Alice sends 96, Bob 97) and ``rfc7865_complete.xml`` the complete metadata example of
RFC 7865 (four streams, extension elements in foreign namespaces), transcribed by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from speech.frames import Party
from telephony.siprec import (
    MAX_BODY_BYTES,
    RecordingOffer,
    SdpStream,
    SiprecError,
    SiprecRules,
    is_recording_invite,
    label_answer,
    parse_body,
    parse_message,
    parse_metadata,
    parse_sdp,
)
from tests.sip.siprec import ALICE, BOB, CALLER, metadata_xml

DATA = Path(__file__).resolve().parent / "data" / "siprec"


def rfc_invite() -> str:
    return (DATA / "rfc7866_invite.txt").read_text().replace("\n", "\r\n")


def multipart(sdp: str, xml: str | None, *, ctype: str = "application/rs-metadata+xml") -> tuple[str, bytes]:
    parts = [f"--b1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"]
    if xml is not None:
        parts.append(f"--b1\r\nContent-Type: {ctype}\r\nContent-Disposition: recording-session\r\n\r\n{xml}\r\n")
    return "multipart/mixed;boundary=b1", ("".join(parts) + "--b1--\r\n").encode()


SDP2 = ("v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:1\r\na=sendonly\r\n"
        "m=audio 4002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:2\r\na=sendonly\r\n")


def test_rfc7866_invite_is_a_recording_session_with_two_labelled_streams() -> None:
    msg = rfc_invite()
    assert is_recording_invite(msg)
    offer = parse_message(msg)
    assert [(s.index, s.port, s.label, s.direction) for s in offer.streams] == [
        (0, 12240, "96", "sendonly"), (1, 12242, "97", "sendonly")]
    assert offer.streams[0].codecs == ("PCMU/8000", "G723/8000", "PCMA/8000")
    md = offer.metadata
    assert md is not None and md.session_id == "hVpd7YQgRW2nD22h7q60JQ=="
    assert md.sip_session_id.startswith("ab30317f1a784dc48ff824d0d3715d86;")
    assert [(p.aor, p.name, p.user) for p in md.participants] == [
        ("sip:bob@biloxi.com", "Bob", "bob"), ("sip:alice@atlanta.com", "Alice", "alice")]
    sender = {s.label: md.sender_of(s.label) for s in offer.streams}
    assert sender["96"] is not None and sender["96"].name == "Alice"
    assert sender["97"] is not None and sender["97"].name == "Bob"


def test_party_rule_agent_by_directory_id_or_aor_regex_else_first_participant_is_caller() -> None:
    offer = parse_message(rfc_invite())
    # alice is in the agents directory: her stream (label 96, first m= line) is the agent's
    roles = SiprecRules(agent_ids=frozenset({"alice", "carol"})).roles(offer)
    assert [(r.label, r.party, r.agent_id) for r in roles] == [("96", Party.AGENT, "alice"), ("97", Party.CALLER, "")]
    # a regex on the AOR (a PBX whose agents live on one domain); no directory id for bob
    roles = SiprecRules(agent_aor=r"@biloxi\.com$").roles(offer)
    assert [(r.label, r.party, r.agent_id) for r in roles] == [("96", Party.CALLER, ""), ("97", Party.AGENT, "")]
    # no rule matches anyone: the first participant (bob, who sends 97) is the caller
    roles = SiprecRules(agent_ids=frozenset({"zed"})).roles(offer)
    assert [(r.label, r.party) for r in roles] == [("96", Party.AGENT), ("97", Party.CALLER)]


def test_rfc7865_complete_example_with_extensions_and_four_streams() -> None:
    md = parse_metadata((DATA / "rfc7865_complete.xml").read_text())
    assert len(md.participants) == 2 and len(md.streams) == 4
    bob = md.participants[0]
    assert bob.aor == "sip:bob@biloxi.com"
    assert set(bob.send) == {"i1Pz3to5hGk8fuXl+PbwCw==", "8zc6e0lYTlWIINA6GR+3ag=="}
    assert md.sender_of("98") is bob and md.sender_of("99") is md.participants[1]
    assert md.sender_of("12345") is None


def test_metadata_update_moves_the_agent_stream_to_another_agent() -> None:
    rules = SiprecRules(agent_ids=frozenset({"alice", "bob"}))
    before = parse_body(*multipart(SDP2, metadata_xml(CALLER, ALICE, 2)))
    after = parse_body(*multipart(SDP2, metadata_xml(CALLER, BOB, 2)))
    assert [(r.party, r.agent_id) for r in rules.roles(before)] == [(Party.CALLER, ""), (Party.AGENT, "alice")]
    assert [(r.party, r.agent_id) for r in rules.roles(after)] == [(Party.CALLER, ""), (Party.AGENT, "bob")]
    assert [s.codecs for s in after.streams] == [("PCMU/8000",), ("PCMA/8000",)]


def test_one_stream_and_no_metadata_fall_back_to_stream_order() -> None:
    one = SDP2.split("m=audio 4002")[0]
    offer = parse_body(*multipart(one, metadata_xml(CALLER, ALICE, 1)))
    assert len(offer.streams) == 1
    assert [r.party for r in SiprecRules().roles(offer)] == [Party.CALLER]
    bare = parse_body(*multipart(SDP2, None))
    assert bare.metadata is None
    assert [r.party for r in SiprecRules().roles(bare)] == [Party.CALLER, Party.AGENT]


def test_plain_invite_is_not_a_recording_session() -> None:
    msg = ("INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nContact: <sip:a@127.0.0.1>\r\n"
           "Content-Type: application/sdp\r\n\r\n" + SDP2)
    assert not is_recording_invite(msg)


@pytest.mark.parametrize(("body", "status", "words"), [
    (multipart(SDP2, "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant"), 400, "well-formed"),
    (multipart(SDP2, "<recording xmlns='urn:other'/>"), 400, "root"),
    (multipart(SDP2, "<!DOCTYPE x [<!ENTITY a 'b'>]><recording xmlns='urn:ietf:params:xml:ns:recording:1'/>"),
     400, "DTD"),
    (multipart(SDP2, "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><stream stream_id='x'/></recording>"),
     400, "label"),
    (multipart(SDP2, metadata_xml(CALLER, ALICE, 1)), 400, "not in the metadata"),
    (multipart("v=0\r\ns=-\r\n", metadata_xml(CALLER, ALICE, 2)), 488, "no m=audio"),
    (("multipart/mixed;boundary=nope", b"--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b1--\r\n"),
     400, "boundary"),
    (("multipart/mixed;boundary=b1", b"--b1\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<x/>\r\n--b1--\r\n"),
     488, "0 SDP parts"),
    (("text/plain", b"hello"), 415, "Content-Type"),
    (multipart(SDP2 + "a=x:" + "z" * MAX_BODY_BYTES, None), 413, "bytes"),
])
def test_malformed_bodies_raise_a_typed_error_with_a_sip_status(body: tuple[str, bytes], status: int,
                                                                 words: str) -> None:
    with pytest.raises(SiprecError) as info:
        parse_body(*body)
    assert info.value.status == status
    assert words in str(info.value)
    assert info.value.reason.startswith("Bad SIPREC body: ") and len(info.value.reason) <= 100


def test_answer_gets_the_offer_labels_stream_by_stream() -> None:
    answer = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=pjmedia\r\nt=0 0\r\n"
              "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n"
              "m=audio 4002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\n")
    out = label_answer(answer, ["1", "2"])
    streams = parse_sdp(out)
    assert [(s.label, s.direction) for s in streams] == [("1", "recvonly"), ("2", "recvonly")]
    assert out.count("a=label:") == 2 and out.endswith("\r\n") and "\r\n\r\n" not in out
    assert label_answer(out, ["1", "2"]) == out  # idempotent (pjsua may call twice)


def test_roles_survive_unknown_labels() -> None:
    offer = RecordingOffer((SdpStream(0, 4000, "9"), SdpStream(1, 4002, "")), None)
    assert [r.party for r in SiprecRules().roles(offer)] == [Party.CALLER, Party.AGENT]
