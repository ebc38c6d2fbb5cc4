"""Broken flow files on disk: each error names the file, the path inside it and the problem.

Every case is a whole small YAML file (so YAML's own readings, such as a bare ``yes`` or an
unquoted number, are part of what is tested) with exactly one thing wrong, and must produce
exactly one problem: a precise path, not a cascade.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.flow import CollectNode, FlowError, MenuNode, load_flow

BASE = """\
start: menu
params: {team: billing}
prompts:
  hi: "Hello. Press 1 for billing."
  bye: "Goodbye."
nodes:
  menu:
    kind: menu
    prompt: hi
    choices:
      - {dtmf: "1", say: [billing], goto: account}
      - {dtmf: "2", say: [support], goto: done}
      - {dtmf: "0", say: [agent], goto: queue}
  account:
    kind: collect
    prompt: hi
    digits: {min: 4, max: 8}
    goto: queue
  queue: {kind: queue, queue: "${team}"}
  done: {kind: hangup, prompt: bye}
"""


def broken(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


# (case, file text, path in the file, words the message must contain)
CASES = [
    ("goto to unknown node", broken("goto: queue}", "goto: nowhere}"),
     "nodes.menu.choices[2].goto", ["refers to unknown node 'nowhere'"]),
    ("collect goto unknown", broken("    goto: queue\n", "    goto: qeue\n"),
     "nodes.account.goto", ["unknown node 'qeue'"]),
    ("start unknown", broken("start: menu", "start: menuu"), "start", ["unknown node 'menuu'"]),
    ("start missing", broken("start: menu\n", ""), "start", ["missing 'start'"]),
    ("unknown prompt", broken("prompt: bye}", "prompt: goodbye}"),
     "nodes.done.prompt", ["prompt 'goodbye' is not defined"]),
    ("reprompt unknown", broken("    prompt: hi\n    choices:", "    prompt: hi\n    reprompt: again\n    choices:"),
     "nodes.menu.reprompt", ["prompt 'again' is not defined"]),
    ("bare yes in say", broken("say: [support]", "say: [yes]"),
     "nodes.menu.choices[1].say", ["'say' must be a phrase or a list of phrases"]),
    ("nested list in say", broken("say: [support]", "say: [[support]]"),
     "nodes.menu.choices[1].say", ["'say' must be a phrase"]),
    ("two-key dtmf", broken('dtmf: "2"', "dtmf: 12"),
     "nodes.menu.choices[1].dtmf", ["dtmf '12' is not a single key"]),
    ("duplicate key", broken('dtmf: "2"', 'dtmf: "1"'),
     "nodes.menu.choices[1].dtmf", ["duplicate dtmf key '1'", "choices[0]"]),
    ("duplicate phrase after normalizing", broken("say: [agent]", "say: [agent, Billing!]"),
     "nodes.menu.choices[2].say[1]", ["duplicate phrase 'Billing!'", "choices[0]"]),
    ("phrase of punctuation", broken("say: [support]", 'say: ["?!"]'),
     "nodes.menu.choices[1].say[0]", ["empty phrase"]),
    ("choice with neither", broken('{dtmf: "2", say: [support], goto: done}', "{goto: done}"),
     "nodes.menu.choices[1]", ["needs a 'dtmf' key or 'say' phrases"]),
    ("choice not a mapping", broken('{dtmf: "2", say: [support], goto: done}', "done"),
     "nodes.menu.choices[1]", ["must be a mapping"]),
    ("timeout as text", broken("    prompt: hi\n    choices:", "    prompt: hi\n    timeout_s: fast\n    choices:"),
     "nodes.menu.timeout_s", ["must be a number", "'fast'"]),
    ("negative timeout", broken("    digits:", "    timeout_s: -1\n    digits:"),
     "nodes.account.timeout_s", ["must be > 0 seconds"]),
    ("fractional retries", broken("    digits:", "    retries: 1.5\n    digits:"),
     "nodes.account.retries", ["whole number"]),
    ("digits below one", broken("{min: 4, max: 8}", "{min: 0, max: 8}"),
     "nodes.account.digits", ["1 <= min <= max", "min 0"]),
    ("digits as text", broken("{min: 4, max: 8}", '{min: "4", max: 8}'),
     "nodes.account.digits.min", ["whole number"]),
    ("digits typo", broken("{min: 4, max: 8}", "{min: 4, maximum: 8}"),
     "nodes.account.digits", ["unknown key(s) maximum", "allowed: max, min"]),
    ("terminator digit", broken("    digits:", "    terminator: 5\n    digits:"),
     "nodes.account.terminator", ["terminator '5' must be one of"]),
    ("secure as text", broken("    digits:", "    secure: 'no'\n    digits:"),
     "nodes.account.secure", ["'secure' must be true or false", "'no'"]),
    ("unknown param", broken('queue: "${team}"', 'queue: "${desk}"'),
     "nodes.queue.queue", ["unknown parameter ${desk}"]),
    ("node kind typo", broken("kind: hangup", "kind: hang_up"),
     "nodes.done", ["unknown kind 'hang_up'", "hangup"]),
    ("node without kind", broken("{kind: hangup, prompt: bye}", "{prompt: bye}"),
     "nodes.done", ["needs a 'kind'"]),
    ("node not a mapping", broken("{kind: hangup, prompt: bye}", "hangup"), "nodes.done", ["must be a mapping"]),
    ("hangup without prompt", broken("{kind: hangup, prompt: bye}", "{kind: hangup}"),
     "nodes.done.prompt", ["a hangup node needs a 'prompt'"]),
    ("key of another kind", broken("{kind: queue,", "{kind: queue, goto: done,"),
     "nodes.queue", ["unknown key(s) goto", "allowed: callback, kind, max_wait_s, overflow, prompt, queue"]),
    ("orphan node", BASE + "  spare: {kind: hangup, prompt: bye}\n", "nodes.spare", ["cannot be reached from start 'menu'"]),
    ("bad prompt name", broken('  bye: "Goodbye."', '  bye: "Goodbye."\n  "good bye": "x"'),
     "prompts.good bye", ["prompt name 'good bye'"]),
    ("blank prompt", broken('"Goodbye."', '"  "'), "prompts.bye", ["prompt 'bye' has no text"]),
    ("no prompts", broken('prompts:\n  hi: "Hello. Press 1 for billing."\n  bye: "Goodbye."', "prompts: {}"),
     "prompts", ["must not be empty"]),
    ("nodes as a list", BASE.split("nodes:")[0] + "nodes: [menu]\n", "nodes", ["'nodes' must be a mapping"]),
    ("top-level typo", BASE + "default: {retries: 1}\n", "", ["unknown key(s) default", "defaults"]),
    ("defaults typo", BASE + "defaults: {timeout: 3}\n", "defaults", ["unknown key(s) timeout"]),
    ("transfer scheme", broken('{kind: queue, queue: "${team}"}', '{kind: transfer, uri: "${team}@host"}'),
     "nodes.queue.uri", ["transfer uri 'billing@host' must start with sip:"]),
]


@pytest.mark.parametrize(("case", "text", "path", "words"), CASES, ids=[c[0] for c in CASES])
def test_broken_file_names_file_path_and_problem(tmp_path: Path, case: str, text: str, path: str, words: list[str]) -> None:
    flow_file = tmp_path / "broken.yaml"
    flow_file.write_text(text)
    with pytest.raises(FlowError) as info:
        load_flow(flow_file)
    err = info.value
    assert len(err.problems) == 1, str(err)
    assert err.path == path
    message = str(err)
    assert message.startswith(f"{flow_file}: "), message
    if path:
        assert f"{path}: " in message
    if path.startswith("nodes."):
        assert err.node == path.split(".")[1].split("[")[0]
    for word in words:
        assert word in message, (word, message)


def test_every_problem_is_reported_one_line_each(tmp_path: Path) -> None:
    text = broken("goto: queue}", "goto: nowhere}").replace("prompt: bye}", "prompt: goodbye}")
    flow_file = tmp_path / "two.yaml"
    flow_file.write_text(text)
    with pytest.raises(FlowError) as info:
        load_flow(flow_file)
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and len(info.value.problems) == 2
    assert lines[0] == f"{flow_file}: node 'menu': nodes.menu.choices[2].goto: refers to unknown node 'nowhere'"
    assert lines[1] == f"{flow_file}: node 'done': nodes.done.prompt: prompt 'goodbye' is not defined in 'prompts'"


def test_conveniences_yaml_authors_expect(tmp_path: Path) -> None:
    """Unquoted keys, one phrase without a list, a null terminator and flow-wide defaults."""
    text = (broken('{dtmf: "1", say: [billing], goto: account}', "{dtmf: 1, say: billing, goto: account}")
            .replace("    digits:", "    terminator: null\n    digits:")
            + "defaults: {timeout_s: 3, retries: 0, barge_in: false}\n")
    flow_file = tmp_path / "ok.yaml"
    flow_file.write_text(text)
    flow = load_flow(flow_file)
    menu, account = flow.nodes["menu"], flow.nodes["account"]
    assert isinstance(menu, MenuNode) and isinstance(account, CollectNode)
    assert (menu.choices[0].dtmf, menu.choices[0].say, menu.choices[0].name) == ("1", ("billing",), "billing")
    assert (menu.timeout_s, menu.retries, menu.barge_in) == (3.0, 0, False)
    assert (account.terminator, account.store_as, account.timeout_s) == (None, "account", 3.0)
    assert flow.nodes["queue"].queue == "billing"  # ${team} from params
    assert flow.name == "ok" and flow.prompts_dir == tmp_path / "prompts"
