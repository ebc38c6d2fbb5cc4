"""Flow files: the sample loads and is whole, its prompts exist, malformed flows name the node."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from ivr.flow import (
    SAMPLE_FLOW,
    CollectNode,
    FlowError,
    MenuNode,
    PlayNode,
    QueueNode,
    TransferNode,
    load_flow,
    parse_flow,
)
from ivr.prompts import main as render_main
from ivr.prompts import read_manifest, render_prompts, stale_prompts


@pytest.fixture(scope="module")
def sample_data() -> dict:
    return yaml.safe_load(SAMPLE_FLOW.read_text())


def test_sample_flow_loads_with_the_specified_menu() -> None:
    flow = load_flow()
    assert flow.start == "welcome"
    menu = flow.nodes["main_menu"]
    assert isinstance(menu, MenuNode)
    by_key = {c.dtmf: c for c in menu.choices}
    assert set(by_key) == {"1", "2", "3", "0", "9"}
    assert by_key["0"].goto == "agents_hold" and by_key["9"].goto == "agent_transfer"
    assert "billing" in by_key["1"].say and "technical support" in by_key["2"].say
    assert "cancel service" in by_key["3"].say and "agent" in by_key["0"].say
    assert menu.retries == 2 and menu.fallback == "agents_hold"
    billing = flow.nodes[by_key["1"].goto]
    assert isinstance(billing, CollectNode)
    assert (billing.min_digits, billing.max_digits, billing.terminator, billing.secure) == (6, 10, "#", False)
    assert isinstance(flow.nodes[billing.goto], QueueNode) and flow.nodes[billing.goto].queue == "billing"
    assert flow.nodes[by_key["2"].goto].queue == "tech_support"
    confirm = flow.nodes[by_key["3"].goto]
    assert isinstance(confirm, MenuNode)
    assert {c.dtmf: c.goto for c in confirm.choices} == {"1": "retention_queue", "2": "main_menu"}
    assert flow.nodes["retention_queue"].queue == "retention"
    agent = flow.nodes[by_key["9"].goto]
    assert isinstance(agent, TransferNode) and agent.uri == "sip:agent@127.0.0.1:5090"
    hold = flow.nodes["agents_hold"]
    assert isinstance(hold, PlayNode) and hold.hold
    assert flow.nodes[hold.goto].queue == "agents"


def test_sample_flow_every_node_reachable_and_every_end_routes() -> None:
    flow = load_flow()
    assert flow.reachable() == set(flow.nodes)
    ends = {n.queue for n in flow.nodes.values() if isinstance(n, QueueNode)}
    assert ends == {"billing", "tech_support", "retention", "agents"}


def test_agent_uri_is_settable() -> None:
    flow = load_flow(SAMPLE_FLOW, params={"agent_uri": "sip:desk@10.0.0.7:5070"})
    assert flow.nodes["agent_transfer"].uri == "sip:desk@10.0.0.7:5070"


def test_every_shipped_prompt_wav_exists_and_is_16k_mono() -> None:
    flow = load_flow()
    assert flow.prompts_dir == (Path(__file__).resolve().parent.parent / "ivr" / "prompts")
    assert flow.missing_prompt_files() == []
    for name in flow.prompts:
        path = flow.prompt_path(name)
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), name
        audio, _ = sf.read(str(path), dtype="float32")
        assert info.duration > 0.5, name
        assert np.sqrt(np.mean(audio**2)) > 0.01, f"{name} is silent"


def test_shipped_prompts_match_their_text() -> None:
    flow = load_flow()
    assert stale_prompts(flow) == [], "prompt text changed: run `callcenter ivr render-prompts`"
    manifest = read_manifest(flow.prompts_dir)
    assert manifest["main_menu"]["rate"] == 16000


def _mutate(data: dict, fn) -> dict:
    d = copy.deepcopy(data)
    fn(d)
    return d


def _menu(d: dict) -> dict:
    return d["nodes"]["main_menu"]


MALFORMED = [
    ("unknown goto", lambda d: _menu(d)["choices"][0].update(goto="nowhere"), "main_menu", "unknown node 'nowhere'"),
    ("no choices", lambda d: _menu(d).update(choices=[]), "main_menu", "at least one choice"),
    ("duplicate dtmf", lambda d: _menu(d)["choices"][1].update(dtmf="1"), "main_menu", "duplicate dtmf key '1'"),
    ("bad dtmf", lambda d: _menu(d)["choices"][1].update(dtmf="12"), "main_menu", "not a single key"),
    ("duplicate phrase", lambda d: _menu(d)["choices"][1].update(say=["Billing"]), "main_menu", "duplicate phrase"),
    ("empty choice", lambda d: _menu(d)["choices"].append({"goto": "welcome"}), "main_menu", "needs a 'dtmf' key or 'say'"),
    ("missing prompt", lambda d: _menu(d).update(reprompt="nosuch"), "main_menu", "prompt 'nosuch' is not defined"),
    ("no prompt", lambda d: d["nodes"]["welcome"].pop("prompt"), "welcome", "needs a 'prompt'"),
    ("unknown kind", lambda d: d["nodes"]["welcome"].update(kind="dance"), "welcome", "unknown kind 'dance'"),
    ("typo key", lambda d: _menu(d).update(tiemout_s=3), "main_menu", "unknown key(s) tiemout_s"),
    ("bad timeout", lambda d: _menu(d).update(timeout_s=0), "main_menu", "timeout_s"),
    ("bad retries", lambda d: _menu(d).update(retries=-1), "main_menu", "retries"),
    ("digits range", lambda d: d["nodes"]["billing_account"].update(digits={"min": 8, "max": 4}), "billing_account", "min <= max"),
    ("terminator digit", lambda d: d["nodes"]["billing_account"].update(terminator="5"), "billing_account", "terminator"),
    ("collect no goto", lambda d: d["nodes"]["billing_account"].pop("goto"), "billing_account", "missing 'goto'"),
    ("bad fallback", lambda d: _menu(d).update(fallback="nope"), "main_menu", "unknown node 'nope'"),
    ("bad uri", lambda d: d["nodes"]["agent_transfer"].update(uri="agent@host"), "agent_transfer", "must start with sip:"),
    ("unknown param", lambda d: d["nodes"]["agent_transfer"].update(uri="${desk}"), "agent_transfer", "unknown parameter"),
    ("queue without name", lambda d: d["nodes"]["billing_queue"].pop("queue"), "billing_queue", "missing 'queue'"),
    ("unreachable", lambda d: d["nodes"].update(orphan={"kind": "queue", "queue": "x"}), "orphan", "cannot be reached"),
    ("play yes-bool", lambda d: d["nodes"]["agents_hold"].update(hold="yes"), "agents_hold", "true or false"),
]


@pytest.mark.parametrize(("case", "mutate", "node", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_flow_names_file_and_node(sample_data: dict, case: str, mutate, node: str, message: str) -> None:
    data = _mutate(sample_data, mutate)
    with pytest.raises(FlowError) as err:
        parse_flow(data, source=Path("flows/broken.yaml"))
    assert err.value.node == node
    text = str(err.value)
    assert text.startswith(f"flows/broken.yaml: node '{node}':"), text
    assert message in text


def test_flow_level_errors_name_the_file(tmp_path: Path, sample_data: dict) -> None:
    with pytest.raises(FlowError, match="flow file not found"):
        load_flow(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed\n")
    with pytest.raises(FlowError, match=r"bad\.yaml: invalid YAML"):
        load_flow(bad)
    bad.write_text(yaml.safe_dump(_mutate(sample_data, lambda d: d.update(start="nowhere"))))
    with pytest.raises(FlowError, match="'start' refers to unknown node 'nowhere'"):
        load_flow(bad)
    bad.write_text(yaml.safe_dump(_mutate(sample_data, lambda d: d["prompts"].update(welcome="  "))))
    with pytest.raises(FlowError, match="prompt 'welcome' has no text"):
        load_flow(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(FlowError, match="top level must be a mapping"):
        load_flow(bad)


def test_unquoted_yaml_yes_is_caught(sample_data: dict) -> None:
    """YAML 1.1 reads a bare ``yes`` as true: the loader must refuse, not match the word "True"."""
    data = _mutate(sample_data, lambda d: d["nodes"]["cancel_confirm"]["choices"][0].update(say=[True]))
    with pytest.raises(FlowError, match="'say' must be a phrase"):
        parse_flow(data, source="f.yaml")


def test_render_prompt_with_real_espeak(tmp_path: Path) -> None:
    flow = parse_flow(
        {
            "start": "bye",
            "prompts": {"bye": "Thank you for calling. Goodbye."},
            "nodes": {"bye": {"kind": "hangup", "prompt": "bye"}},
        },
        source=tmp_path / "tiny.yaml",
    )
    out = tmp_path / "rendered"
    first = render_prompts(flow, out, rate=8000)
    assert [(r.name, r.rendered) for r in first] == [("bye", True)]
    info = sf.info(str(out / "bye.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert 1.0 < info.duration < 6.0
    audio, _ = sf.read(str(out / "bye.wav"), dtype="float32")
    assert np.abs(audio).max() > 0.3  # normalised speech, not silence
    again = render_prompts(flow, out, rate=8000)
    assert [r.rendered for r in again] == [False]
    assert render_prompts(flow, out, rate=16000)[0].rendered  # another rate → re-rendered
    assert sf.info(str(out / "bye.wav")).samplerate == 16000
    assert stale_prompts(flow, out) == []


def test_render_prompts_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow_file = tmp_path / "f.yaml"
    flow_file.write_text(yaml.safe_dump({
        "start": "hi", "prompts": {"hi": "Hello."}, "nodes": {"hi": {"kind": "hangup", "prompt": "hi"}},
    }))
    assert render_main([str(flow_file)]) == 0
    assert (tmp_path / "prompts" / "hi.wav").is_file()  # default: <flow dir>/prompts
    assert "1 prompt(s) rendered" in capsys.readouterr().out
    assert render_main([str(tmp_path / "nope.yaml")]) == 2
    assert "flow file not found" in capsys.readouterr().err
