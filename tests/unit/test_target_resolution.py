"""Target resolution on this machine's real files: libc, PATH, the linker cache, interfaces, processes."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from ebpf_magic.attach import targets
from ebpf_magic.errors import AttachError


def _real_libc() -> str:
    """The libc.so.6 this interpreter has mapped: the file every spelling must resolve to."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if line.rstrip().endswith("/libc.so.6")}
    assert paths, "this Python does not map a libc.so.6"
    return os.path.realpath(sorted(paths)[0])


LIBC = _real_libc()


@pytest.mark.parametrize("name", ["libc.so.6", "libc", "c", "libc.so", LIBC])
def test_every_spelling_of_libc_is_the_libc_this_process_maps(name):
    found = targets.resolve_binary(name)
    assert os.path.isabs(found.path)
    assert os.path.samefile(found.path, LIBC)


def test_libc_so_6_resolves_through_libbpfs_own_directories():
    found = targets.resolve_binary("libc.so.6")
    assert found.how == "libbpf"
    assert os.path.dirname(found.path) in targets.libbpf_search_dirs("libc.so.6")


@pytest.mark.parametrize("name", ["libc", "c"])
def test_names_libbpf_refuses_come_from_the_linker_cache(name):
    # libbpf would look for a program called "libc" or "c" on PATH and fail.
    assert not any(os.path.exists(os.path.join(d, name)) for d in targets.libbpf_search_dirs(name))
    assert targets.resolve_binary(name).how == "ld.so.cache"


def test_libc_so_linker_script_is_passed_over_when_present():
    script = [os.path.join(d, "libc.so") for d in targets.libbpf_search_dirs("libc.so")
              if os.path.isfile(os.path.join(d, "libc.so"))]
    found = targets.resolve_binary("libc.so")
    assert os.path.samefile(found.path, LIBC)
    if script:  # libc6-dev installs a text linker script there
        with open(script[0], "rb") as f:
            assert not f.read(4).startswith(b"\x7fELF")


def test_library_and_program_search_paths_follow_libbpf():
    lib_dirs = targets.libbpf_search_dirs("libfoo.so.1")
    assert lib_dirs[-3:] == ["/usr/lib64", "/usr/lib", f"/lib/{_multiarch()}"]
    prog_dirs = targets.libbpf_search_dirs("bash")
    assert prog_dirs[-2:] == ["/usr/bin", "/usr/sbin"]
    assert prog_dirs[:-2] == [d for d in os.environ.get("PATH", "").split(":") if d]


def _multiarch() -> str:
    import sysconfig

    return sysconfig.get_config_var("MULTIARCH")


def test_a_program_on_path_resolves_like_which():
    found = targets.resolve_binary("bash")
    assert found.how == "libbpf"
    assert os.path.samefile(found.path, shutil.which("bash"))


def test_a_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(os.path.dirname(LIBC))
    found = targets.resolve_binary("./" + os.path.basename(LIBC))
    assert found.path == LIBC and found.how == "path"


def test_missing_library_lists_the_directories_searched():
    with pytest.raises(AttachError) as e:
        targets.resolve_binary("libnosuchthing.so.7")
    err = e.value
    assert "libnosuchthing.so.7" in err.what
    for d in ("/usr/lib64", "/usr/lib", f"/lib/{_multiarch()}", "ldconfig -p"):
        assert d in err.detail
    assert "ldconfig -p | grep" in err.hint


def test_missing_program_lists_path_and_bin_dirs():
    with pytest.raises(AttachError) as e:
        targets.resolve_binary("no_such_program_here")
    assert "/usr/bin" in e.value.detail and "/usr/sbin" in e.value.detail
    assert "which no_such_program_here" in e.value.hint


def test_missing_file_and_non_elf_file(tmp_path):
    with pytest.raises(AttachError, match="no file /no/such/lib.so"):
        targets.resolve_binary("/no/such/lib.so")
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    with pytest.raises(AttachError, match="not an ELF"):
        targets.resolve_binary(str(text))


def test_symbols_of_libc_are_read_from_its_elf_tables():
    names = targets.function_symbols(LIBC)
    assert {"malloc", "free", "getpid"} <= names
    assert not any("@" in n for n in names)
    targets.require_symbol(LIBC, "malloc")


def test_missing_symbol_names_the_binary_and_close_symbols():
    with pytest.raises(AttachError) as e:
        targets.require_symbol(LIBC, "mallocc")
    assert "mallocc" in e.value.what and LIBC in e.value.what
    assert "malloc" in e.value.hint.split("?")[0]
    assert f"nm -D --defined-only {LIBC}" in e.value.hint


def test_process_that_exists_exited_or_never_was():
    targets.require_process(os.getpid())
    targets.require_process(None)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: no /proc entry
    with pytest.raises(AttachError, match=f"process {child.pid} does not exist") as e:
        targets.require_process(child.pid)
    assert "ps -e" in e.value.hint
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        _wait_for_state(zombie.pid, "Z")
        with pytest.raises(AttachError, match=f"process {zombie.pid} has exited"):
            targets.require_process(zombie.pid)
    finally:
        zombie.wait()


def _wait_for_state(pid: int, state: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == state:
                return
        time.sleep(0.01)
    pytest.fail(f"process {pid} never reached state {state}")


def test_interfaces_from_if_nameindex():
    index = dict((n, i) for i, n in socket.if_nameindex())
    assert targets.require_interface("lo") == index["lo"]
    with pytest.raises(AttachError) as e:
        targets.require_interface("lo0")
    assert "'lo0'" in e.value.what
    assert "did you mean lo?" in e.value.hint
    assert all(name in e.value.hint for name in index)


def test_kernel_function_from_kallsyms():
    names = targets.kernel_functions()
    if not names:
        pytest.skip("/proc/kallsyms is not readable here")
    assert "do_unlinkat" in names or "do_sys_openat2" in names
    with pytest.raises(AttachError) as e:
        targets.require_kernel_function("do_unlinkatt")
    assert "do_unlinkatt" in e.value.what and "/proc/kallsyms" in e.value.hint
