"""The language through Session.run."""
from __future__ import annotations

from wnshell.command import Command
from wnshell.registry import Registry
from wnshell.session import Session


def test_echo_and_lists(run):
    assert run("echo a   b; echo c\necho d") == (0, "a b\nc\nd\n", "")


def test_quoting(run):
    assert run("""echo 'a $X "b"' "c \\$X \\" \\\\ \\n" d\\ e""")[1] == \
        'a $X "b" c $X " \\ \\n d e\n'


def test_variables_defaults_and_unset(run):
    st, out, _ = run('export A=1; echo $A ${A} ${B?dflt} ${B?} [${B}] "$UNSET" ${B?"x y"}')
    assert out == "1 1 dflt  []  x y\n"       # "$UNSET" is one empty argument


def test_expansion_is_never_split_nor_relexed(sh, run):
    sh.env["V"] = "a  b; echo INJECTED | x $(y) `z` > /f"
    assert run("echo $V") == (0, "a  b; echo INJECTED | x $(y) `z` > /f\n", "")
    assert run("export W=$V; echo \"$W\"")[1] == sh.env["V"] + "\n"
    assert sh.store.fetch("/f") is None


def test_empty_value_is_still_one_argument(sh, run):
    # the number of arguments never depends on values: an empty value is ""
    sh.env["E"] = ""
    assert run("echo [$E] x $E y")[1] == "[] x  y\n"


def test_status_and_and_or(run):
    assert run("false; echo $?; true; echo $?")[1] == "1\n0\n"
    assert run("false && echo no || echo yes")[1] == "yes\n"
    assert run("true || echo no && echo yes")[1] == "yes\n"
    assert run("false")[0] == 1
    assert run("false || true")[0] == 0


def test_pipelines(run):
    assert run("echo hello | cat | cat")[1] == "hello\n"
    assert run("cat | cat", stdin="in\n")[1] == "in\n"
    # status of a pipeline is the last command's
    assert run("false | true")[0] == 0


def test_command_substitution(run):
    assert run('echo "[$(echo a; echo b)]" `echo c`')[1] == "[a\nb] c\n"
    assert run("echo $(echo $(echo deep))")[1] == "deep\n"
    assert run("export J=$(echo '{\"a\": 1}'); echo $J")[1] == '{"a": 1}\n'
    # exit inside $(...) stops only the substitution
    assert run("echo $(exit 3; echo no)x; echo $?")[1] == "x\n0\n"


def test_assignments(sh, run):
    assert run("A=1; echo $A")[1] == "1\n"
    assert run("B=2 env")[1].count("B=2") == 1
    assert "B" not in sh.env               # K=V cmd is only for that command
    assert run("C='x y' D=$A; echo $C $D")[1] == "x y 1\n"


def test_redirections_to_store_objects(sh, run):
    assert run("echo one > f; echo two >> f; echo three >> ~/f") == (0, "", "")
    assert sh.store.read(sh.store.fetch("/home/demo/f")["id"]) == b"one\ntwo\nthree\n"
    assert run("cat < f")[1] == "one\ntwo\nthree\n"
    assert run("echo new > f; cat f")[1] == "new\n"
    # the command's output goes to the file only
    assert run("echo x > g; echo y")[1] == "y\n"


def test_redirection_creates_missing_folders_as_walnut_does(sh, run):
    assert run("echo x > ~/a/b/c; cat ~/a/b/c") == (0, "x\n", "")
    assert sh.store.fetch("/home/demo/a/b")["race"] == "DIR"
    run("echo f > ~/file")
    st, _, err = run("echo x > ~/file/sub")                 # a FILE is not a folder
    assert st == 1 and err.startswith("e.io.") and "Traceback" not in err


def test_redirection_errors(sh, run):
    st, out, err = run("cat < nothere")
    assert st == 1 and err.startswith("e.io.obj.noexists")
    run("mkdir d")
    st, _, err = run("echo x > d")
    assert st == 1 and err.startswith("e.io.obj.notfile")


def test_stderr_merge(run):
    st, out, err = run("nosuch 2>&1")
    assert (st, out, err) == (127, "e.cmd.notfound : nosuch\n", "")
    st, out, err = run("nosuch 2>&1 > f; cat f")
    assert out == "e.cmd.notfound : nosuch\n"                  # stderr -> old stdout
    run("nosuch > g 2>&1")
    assert run("cat g")[1] == "e.cmd.notfound : nosuch\n"
    assert run("echo to-err >&2") == (0, "", "to-err\n")
    run("echo to-err 2>e >&2")
    assert run("cat e")[1] == "to-err\n"


def test_exit(sh, run):
    assert run("echo a; exit 3; echo b") == (3, "a\n", "")
    assert sh.exit_requested == 3
    assert run("false; exit")[0] == 1
    assert run("exit x")[0] == 2


def test_unknown_command_suggests_a_close_name(run):
    assert run("ojb ~") == (127, "", "e.cmd.notfound : ojb (did you mean obj?)\n")
    assert run("zzqqx") == (127, "", "e.cmd.notfound : zzqqx\n")


def test_set_e_stops_at_the_first_failure(run):
    assert run("set -e; echo a; false; echo b") == (1, "a\n", "")
    assert run("set -e; cat ~/nope; echo b")[:2] == (1, "")
    # a failure left of && / || does not stop it (as in sh); the last one does
    assert run("set -e; false && echo no; false || echo yes; echo end") == \
        (0, "yes\nend\n", "")
    assert run("set -e; true && false; echo no")[:2] == (1, "")
    assert run("set -e; set +e; false; echo on") == (0, "on\n", "")
    assert run("set -e; set")[1] == "set -e\n"
    assert run("set +e; set -o errexit; false; echo no")[:2] == (1, "")
    assert run("set +o errexit; set -x")[0] == 2


def test_unknown_command(sh, run):
    st, out, err = run("nosuch a b")
    assert (st, out, err) == (127, "", "e.cmd.notfound : nosuch\n")
    assert sh.last_error.key == "e.cmd.notfound"


class Boom(Command):
    name = "boom"
    summary = "raise"
    secret = "pay_key=SECRET123"

    def run(self, session, args, stdin, stdout, stderr):
        raise RuntimeError(self.secret)


class Interrupt(Command):
    name = "interrupt"

    def run(self, session, args, stdin, stdout, stderr):
        stdout.write("before\n")
        raise KeyboardInterrupt


class OwnHelp(Command):
    name = "ownhelp"
    handles_help = True
    flags = "h"

    def run(self, session, args, stdin, stdout, stderr):
        stdout.write(f"mine {args}\n")
        return 0


def _session_with(*cmds):
    from objstore import open_store
    reg = Registry(parent=__import__("wnshell.registry").registry.REGISTRY)
    for c in cmds:
        reg.register(c)
    return Session(open_store("memory://"), registry=reg)


def test_internal_errors_are_one_line_without_secrets():
    s = _session_with(Boom())
    st, out, err = s.run("boom; echo after")
    assert st == 0 and out == "after\n"
    assert err == "e.cmd.internal : boom: RuntimeError\n"
    assert "SECRET" not in err and "Traceback" not in err


def test_ctrl_c_stops_with_130():
    s = _session_with(Interrupt())
    assert s.run("echo a; interrupt; echo never") == (130, "a\nbefore\n", "")
    assert s.last_status == 130
    assert s.run("echo again") == (0, "again\n", "")        # the session lives on


def test_help_for_every_command(run):
    st, out, _ = run("echo -h")
    assert st == 0 and out.startswith("echo - ")
    assert run("pwd --help")[1].startswith("pwd - ")
    # a value that merely looks like -h is data
    assert run("export H=-h; echo $H")[1] == "-h\n"


def test_command_may_own_h():
    s = _session_with(OwnHelp())
    assert s.run("ownhelp -h")[1] == "mine ['-h']\n"


def test_usage_error_status_2(run):
    st, out, err = run("export 1BAD=x")
    assert st == 2 and err == "e.cmd.export.badname : 1BAD\n"


def test_positional_parameters(sh, run):
    sh.argv = ["script", "a b", "c"]
    assert run('echo $0 $1 $2 $3 $#; echo "$@"')[1] == "script a b c  2\na b c\n"
    s2 = _session_with(Echo2())
    s2.argv = ["s", "x y", "", "-n"]
    assert s2.run("args $@")[1] == "['x y', '', '-n']\n"


class Echo2(Command):
    name = "args"

    def run(self, session, args, stdin, stdout, stderr):
        stdout.write(repr(list(map(str, args))) + "\n")
        return 0


def test_stdin_is_shared_by_a_list(run):
    assert run("cat; echo end", stdin="data\n")[1] == "data\nend\n"


def test_crlf_scripts(run):
    assert run("echo a\r\necho b\r\n")[1] == "a\nb\n"


def test_streams_can_be_given(sh):
    import io
    out, err = io.StringIO(), io.StringIO()
    assert sh.run("echo o; nosuch", stdout=out, stderr=err) == (127, "", "")
    assert out.getvalue() == "o\n" and err.getvalue() == "e.cmd.notfound : nosuch\n"


def test_assignment_takes_the_status_of_its_substitution(run):
    assert run("x=$(false); echo $?") == (0, "1\n", "")
    assert run("x=$(exit 3); echo $?") == (0, "3\n", "")
    assert run("x=$(true); echo $?") == (0, "0\n", "")
    assert run("false; x=1; echo $?") == (0, "0\n", "")
    assert run("x=$(false) && echo no || echo failed")[1] == "failed\n"


def test_ctrl_c_leaves_no_half_written_object():
    # Interrupt writes part of its output, then the user presses Ctrl-C
    s = _session_with(Interrupt())
    assert s.run("echo whole > f")[0] == 0
    assert s.run("interrupt > f")[0] == 130                    # existing: untouched
    assert s.run("cat f") == (0, "whole\n", "")
    assert s.run("interrupt >> f")[0] == 130
    assert s.run("cat f") == (0, "whole\n", "")
    assert s.run("interrupt > new")[0] == 130                  # created for it: gone
    assert s.store.fetch("/home/demo/new") is None
    assert s.run("echo ok > new; cat new") == (0, "ok\n", "")
