"""The parser builds a tree; syntax errors are e.cmd.syntax with status 2."""
from __future__ import annotations

from pathlib import Path

import pytest

from wnshell.errors import ShellSyntaxError
from wnshell.nodes import Lit, Sub, Var, Word
from wnshell.parser import is_complete, parse


def words(text):
    """The words of the single simple command in ``text``."""
    tree = parse(text)
    assert len(tree.items) == 1 and not tree.items[0].rest
    assert len(tree.items[0].first.cmds) == 1
    return tree.items[0].first.cmds[0].words


def test_quotes_and_parts():
    w = words("""echo a'b c'"d $X ${Y?z}"\\ e""")
    assert w[0] == Word([Lit("echo")])
    assert w[1].parts == [Lit("a"), Lit("b c", True), Lit("d ", True), Var("X"),
                          Lit(" ", True), Var("Y", [Lit("z", True)]), Lit(" e")]
    assert len(w) == 2


def test_lists_and_or_pipelines():
    tree = parse("a; b && c || d | e\nf")
    assert len(tree.items) == 3
    mid = tree.items[1]
    assert [op for op, _ in mid.rest] == ["&&", "||"]
    assert len(mid.rest[1][1].cmds) == 2


def test_seed_regapi_template_is_one_command():
    text = ("weixin xxx order -submit ${http-qs-id} \n"
            "           -client_ip ${http-remote-host} \n"
            "           -openid ${http-qs-openid} ")
    w = words(text)
    assert [x.parts[0].text if isinstance(x.parts[0], Lit) else x.parts[0].name
            for x in w] == ["weixin", "xxx", "order", "-submit", "http-qs-id",
                            "-client_ip", "http-remote-host", "-openid", "http-qs-openid"]


def test_dash_continuation_needs_leading_blank_and_a_command_above():
    assert len(parse("echo a\n-b").items) == 2           # no indentation: new command
    assert len(parse("echo a;\n  -b").items) == 2         # nothing to continue
    assert len(parse("echo a \\\n  b").items) == 1         # classic continuation


def test_comments():
    tree = parse("# hash\n// slashes\n   // indented\necho a # tail\n")
    assert len(tree.items) == 1
    assert len(tree.items[0].first.cmds[0].words) == 2
    # '//' in the middle of a command is a word
    assert len(words("echo http://x // y")) == 4


def test_substitutions_are_parsed_up_front():
    w = words("echo $(echo a $(b c) ')') `x \\`y\\``")
    assert isinstance(w[1].parts[0], Sub) and isinstance(w[2].parts[0], Sub)
    inner = w[1].parts[0].body.items[0].first.cmds[0].words
    assert isinstance(inner[2].parts[0], Sub) and inner[3].parts == [Lit(")", True)]


def test_assignments_and_redirections():
    cmd = parse("A=1 B=$X echo C=2 > f 2>&1 < g >> h").items[0].first.cmds[0]
    assert [n for n, _ in cmd.assigns] == ["A", "B"]
    assert len(cmd.words) == 2                             # C=2 is an argument
    assert [(r.fd, r.op) for r in cmd.redirs] == [(1, ">"), (2, ">&"), (0, "<"), (1, ">>")]


def test_template_names_and_alias():
    w = words("echo ${http-qs-id} $<http-qs-x>y ${a.b?} $1 $? $@")
    assert w[1].parts == [Var("http-qs-id")]
    assert w[2].parts == [Var("http-qs-x"), Lit("y")]
    assert w[3].parts == [Var("a.b", [])]
    assert [x.parts[0].name for x in w[4:]] == ["1", "?", "@"]


@pytest.mark.parametrize("text", ["echo 'a", 'echo "a', "echo a \\", "echo a |",
                                  "a &&", "echo $(a", "echo `a", "echo ${A"])
def test_incomplete(text):
    with pytest.raises(ShellSyntaxError) as e:
        parse(text)
    assert e.value.key == "e.cmd.syntax" and e.value.incomplete
    assert not is_complete(text)


@pytest.mark.parametrize("text", ["| a", "a ;; | b", "echo a & b", "echo >", "echo ${}",
                                  "echo ${a b}", "a && && b"])
def test_syntax_errors(text):
    with pytest.raises(ShellSyntaxError) as e:
        parse(text)
    assert e.value.line().startswith("e.cmd.syntax : ")


def test_syntax_error_through_session(run):
    st, out, err = run("echo ok; echo 'oops")
    assert (st, out) == (2, "")                       # nothing ran
    assert err.startswith("e.cmd.syntax : unterminated '") and err.count("\n") == 1


def test_seed_regapi_block_verbatim():
    """The seed's whole `.regapi` block (CJK comments, trailing blanks) parses as the two
    commands it shows."""
    # the seed lives in ../shared/ beside the checkout (CI copies it there too)
    seed_md = Path(__file__).resolve().parents[3] / "shared" / "seed" / "weixin_pay.md"
    seed = seed_md.read_text(encoding="utf-8") if seed_md.exists() else None
    block = ("# 提交订单支付信息\n"
             "weixin xxx order -submit ${http-qs-id} \n"
             "           -client_ip ${http-remote-host} \n"
             "           -openid ${http-qs-openid} \n"
             "\n"
             "# 处理订单支付的返回\n"
             "weixin xxx order -result id:${id}\n")
    if seed is not None:
        assert block in seed
    tree = parse(block)
    assert len(tree.items) == 2
    cmds = [it.first.cmds[0] for it in tree.items]
    assert len(cmds[0].words) == 9
    assert cmds[1].words[4].parts == [Lit("id:"), Var("id")]


# ---- hostile shell text: deep nesting is one syntax-error line, never a RecursionError;
# ---- a syntax error names the script's line it is on
@pytest.mark.parametrize("text", [
    "echo " + "$(" * 100_000,                                # 100k open $(
    "echo " + "$(echo " * 2000 + "hi" + ")" * 2000,          # valid but absurdly deep
    "echo " + "${a?" * 5000 + "x" + "}" * 5000,              # nested defaults
])
def test_deep_nesting_is_a_syntax_error_line(run, text):
    status, out, err = run(text)
    assert status == 2 and out == ""
    assert err.startswith("e.cmd.syntax : ") and err.count("\n") == 1


def test_reasonable_nesting_still_runs(run):
    assert run("echo " + "$(echo " * 40 + "hi" + ")" * 40) == (0, "hi\n", "")
    assert run("echo " + "${a?" * 40 + "x" + "}" * 40) == (0, "x\n", "")


def test_deep_nesting_from_the_cli_is_one_line(cli, tmp_path):
    script = tmp_path / "deep.wn"
    script.write_text("echo " + "$(" * 200_000 + "\n")
    p = cli(str(script), store="memory://")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("e.cmd.syntax : ") and p.stderr.count("\n") == 1


def test_errors_inside_backticks_name_the_scripts_line(run):
    text = "echo a\n\n\necho `echo\n\necho \"x`\n"
    status, _, err = run(text)
    assert status == 2 and "(line 6)" in err, err
    text = "echo `echo a\n`\necho `echo b\n`\necho `echo c >&5`\n"
    status, _, err = run(text)
    assert status == 2 and "(line 5)" in err, err


@pytest.mark.parametrize("bad, more", [
    ("echo $(echo a", True),       # open $( : everything after it is inside
    ('echo "open', True),
    ("echo a |", False),           # a trailing operator: only blank lines follow
    ("echo a &&", False),
    ("echo a ||", False),
])
def test_piped_script_error_names_the_line_it_is_on(cli, bad, more):
    """A syntax error on line 50 of a piped script says line 50, not the last line."""
    after = "".join(f"echo m{i}\n" for i in range(10)) if more else ""
    text = "".join(f"echo l{i}\n" for i in range(1, 50)) + bad + "\n" + after + "\n\n"
    p = cli(store="memory://", input=text)
    assert p.returncode == 2 and p.stdout == ""          # nothing ran
    assert p.stderr.startswith("e.cmd.syntax : ") and p.stderr.count("\n") == 1
    assert "(line 50)" in p.stderr, p.stderr


@pytest.mark.parametrize("text", ["echo a 3>x", "echo a 12>x", "echo a 3<x", "echo a 9>>x"])
def test_other_file_descriptors_are_a_syntax_error(sh, run, text):
    """In sh, 3>x redirects fd 3; read as the argument "3", x silently got "a 3"."""
    status, out, err = run(text)
    assert status == 2 and out == "" and err.startswith("e.cmd.syntax : ")
    assert sh.store.fetch("/home/demo/x") is None


def test_digits_that_are_not_a_redirection_stay_words(run):
    assert run("echo a3>x; cat x") == (0, "a3\n", "")
    assert run("echo 3 > x; cat x") == (0, "3\n", "")
    assert run("echo 1.5>x; cat x") == (0, "1.5\n", "")
    assert run("echo hi > f; cat 0< f; cat 1>g f; cat g") == (0, "hi\nhi\n", "")
