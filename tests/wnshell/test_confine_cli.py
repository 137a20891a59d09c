"""``wnshell --confine``: a local shell confined to /home/<user>, as .regapi requests
are; without it the local user owns the whole store."""
from __future__ import annotations


def test_confine_flag_hides_other_users_objects(cli):
    p = cli("--user", "other", "-c", "echo secret > ~/s.txt && obj ~/s.txt -u '{\"k\":1}'")
    assert p.returncode == 0, p.stderr
    # unconfined: the local user may read anything
    p = cli("--user", "demo", "-c", "cat /home/other/s.txt")
    assert (p.returncode, p.stdout) == (0, "secret\n")
    # confined: the object is missing, writes outside are forbidden, queries stay home
    p = cli("--user", "demo", "--confine", "-c", "cat /home/other/s.txt")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == "e.io.obj.noexists : /home/other/s.txt\n"
    p = cli("--user", "demo", "--confine", "-c", "echo x > /home/other/s.txt")
    assert p.returncode == 1 and p.stderr.startswith("e.io.forbidden : ")
    p = cli("--user", "demo", "--confine", "-c", "obj -match '{\"k\": 1}'; pwd")
    assert p.returncode == 0 and p.stdout == "[]\n/home/demo\n", p.stderr
    p = cli("--user", "other", "-c", "cat ~/s.txt")
    assert p.stdout == "secret\n"


def test_confine_in_usage(cli):
    p = cli("--help")
    assert p.returncode == 0 and "--confine" in p.stdout
