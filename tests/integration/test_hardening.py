"""The built binaries are hardened, as read from their ELF with readelf:
PIE, full RELRO, stack protector, FORTIFY and a non-executable stack.

CMakeLists.txt asks for these in every build type; this checks what the
toolchain made of it, so a flag lost to a CMake or compiler change fails
here. The test_checker_* tests compile a small program with and without
each property and check that the same code tells them apart, so no check
can pass because it reads nothing.

FORTIFY is not expected where CMakeLists.txt leaves it out: sanitizer
builds (build-asan/; their runtime checks every access itself) and plain
Debug builds (-O0). Only that check is skipped there, with the reason.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import cost_exporter_binary, portcullis_binary

READELF = shutil.which("readelf") or "/usr/bin/readelf"

# Not FORTIFY's: the stack protector's own symbols.
STACK_CHK = {"__stack_chk_fail", "__stack_chk_guard"}


def readelf(option, path):
    p = subprocess.run([READELF, "-W", option, str(path)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "readelf %s %s: %s" % (option, path, p.stderr)
    return p.stdout


class Elf:
    """What readelf says about one binary: its type, segments, dynamic
    flags and dynamic symbols."""

    def __init__(self, path):
        self.path = Path(path)
        m = re.search(r"^\s*Type:\s+(\w+)", readelf("--file-header", path),
                      re.M)
        assert m, "readelf found no ELF type in %s" % path
        self.type = m.group(1)
        # Type, offset, vaddr, paddr, filesz, memsz, flags ("R E", "RW "),
        # align.
        self.segments = {}
        for m in re.finditer(r"^\s+([A-Z_0-9]+)\s+(?:0x[0-9a-f]+\s+){5}"
                             r"([RWE ]{3}) 0x",
                             readelf("--program-headers", path), re.M):
            self.segments.setdefault(m.group(1), []).append(m.group(2))
        dyn = readelf("--dynamic", path)
        flags = re.search(r"\(FLAGS\)\s+(.*)$", dyn, re.M)
        flags_1 = re.search(r"\(FLAGS_1\)\s+Flags:(.*)$", dyn, re.M)
        self.bind_now = bool(
            re.search(r"\(BIND_NOW\)", dyn) or
            (flags and "BIND_NOW" in flags.group(1).split()) or
            (flags_1 and "NOW" in flags_1.group(1).split()))
        self.dynamic_flags = "FLAGS %s, FLAGS_1 %s" % (
            flags.group(1).strip() if flags else "-",
            flags_1.group(1).strip() if flags_1 else "-")
        # Num: Value Size Type Bind Vis Ndx Name[@version] [(n)]
        self.imports, self.symbols = set(), set()
        for line in readelf("--dyn-syms", path).splitlines():
            f = line.split()
            if len(f) < 8 or not re.fullmatch(r"\d+:", f[0]):
                continue
            name = f[7].split("@")[0]
            self.symbols.add(name)
            if f[6] == "UND":
                self.imports.add(name)

    def sanitized(self):
        """Built with ASan (gcc's libasan imports __asan_init; clang's
        static runtime defines and exports it)."""
        return "__asan_init" in self.symbols

    def fortified(self):
        """The imported __*_chk functions (__snprintf_chk, ...). Only
        imports count: clang's ASan runtime defines interceptors by those
        names."""
        return sorted(n for n in self.imports
                      if re.fullmatch(r"__\w+_chk", n) and n not in STACK_CHK)


# Each check: (True, "") when the property holds, else (False, why).


def check_pie(elf):
    if elf.type != "DYN" or "INTERP" not in elf.segments:
        return False, ("not a PIE: ELF type %s, %s" % (
            elf.type, "an interpreter" if "INTERP" in elf.segments
            else "no interpreter"))
    return True, ""


def check_relro(elf):
    if "GNU_RELRO" not in elf.segments:
        return False, "no GNU_RELRO segment (-Wl,-z,relro)"
    if not elf.bind_now:
        return False, ("partial RELRO: no BIND_NOW (-Wl,-z,now); %s"
                       % elf.dynamic_flags)
    return True, ""


def check_stack_protector(elf):
    if "__stack_chk_fail" not in elf.imports:
        return False, "no __stack_chk_fail import (-fstack-protector-strong)"
    return True, ""


def check_fortify(elf):
    if not elf.fortified():
        return False, "no __*_chk import (-D_FORTIFY_SOURCE with -O1 or more)"
    return True, ""


def check_noexec_stack(elf):
    stack = elf.segments.get("GNU_STACK")
    if not stack:
        return False, "no GNU_STACK segment: the kernel maps it executable"
    if "E" in stack[0]:
        return False, "GNU_STACK is %r: an executable stack" % stack[0]
    return True, ""


CHECKS = {
    "pie": check_pie,
    "relro": check_relro,
    "stack_protector": check_stack_protector,
    "fortify": check_fortify,
    "noexec_stack": check_noexec_stack,
}

BINARIES = {
    "portcullis": portcullis_binary,
    "portcullis-cost-exporter": cost_exporter_binary,
}


def build_type(binary):
    """CMAKE_BUILD_TYPE from the CMakeCache.txt of the build tree that
    holds binary (BUILD/bin/NAME), or None."""
    cache = Path(binary).resolve().parent.parent / "CMakeCache.txt"
    try:
        m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache.read_text(),
                      re.M)
    except OSError:
        return None
    return m.group(1).strip() if m else None


def fortify_exemption(binary, elf):
    """Why binary may lack FORTIFY (CMakeLists.txt leaves it out), or
    None."""
    if elf.sanitized():
        return ("ASan build: CMakeLists.txt leaves FORTIFY out under the "
                "sanitizers, which check every access themselves")
    if build_type(binary) == "Debug":
        return ("Debug build (-O0): FORTIFY needs optimisation, "
                "CMakeLists.txt sets it only where there is some")
    return None


_elves = {}


def elf_of(name):
    path = BINARIES[name]()
    if path not in _elves:
        _elves[path] = Elf(path)
    return path, _elves[path]


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(BINARIES))
def test_binary_is_hardened(name, check):
    path, elf = elf_of(name)
    if check == "fortify":
        why = fortify_exemption(path, elf)
        if why:
            pytest.skip(why)
    ok, detail = CHECKS[check](elf)
    assert ok, "%s: %s" % (path, detail)


# ---------------------------------------------- the checks checked

PROGRAM = r"""
#include <stdio.h>

int
main(int argc, char **argv)
{
	char buf[16]; /* an array: -fstack-protector-strong guards the frame */

	/* A size known only at run time: FORTIFY makes it __snprintf_chk. */
	snprintf(buf, (size_t)argc * 8, "%s", argv[0]);
	puts(buf);
	return argc > 1;
}
"""

HARDENED = ["-O2", "-fstack-protector-strong", "-U_FORTIFY_SOURCE",
            "-D_FORTIFY_SOURCE=3", "-fPIE", "-pie", "-Wl,-z,relro,-z,now",
            "-Wl,-z,noexecstack"]

# What to take out of HARDENED and put in its place, for each way a
# binary can miss a property, and the check that must then fail.
WEAKENED = {
    "no_pie": (["-fPIE", "-pie"], ["-fno-PIE", "-no-pie"], "pie"),
    "no_relro": (["-Wl,-z,relro,-z,now"], ["-Wl,-z,norelro"], "relro"),
    "lazy_binding": (["-Wl,-z,relro,-z,now"], ["-Wl,-z,relro,-z,lazy"],
                     "relro"),
    "no_stack_protector": (["-fstack-protector-strong"],
                           ["-fno-stack-protector"], "stack_protector"),
    "no_fortify": (["-D_FORTIFY_SOURCE=3"], [], "fortify"),
    "exec_stack": (["-Wl,-z,noexecstack"], ["-Wl,-z,execstack"],
                   "noexec_stack"),
}


def compile_program(tmp_path, flags):
    cc = shutil.which("cc")
    assert cc, "no C compiler (cc) to build the checker's test programs"
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    out = tmp_path / "prog"
    p = subprocess.run([cc, *flags, "-o", str(out), str(src)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "cc %s: %s" % (" ".join(flags), p.stderr)
    return Elf(out)


def test_checker_passes_a_hardened_program(tmp_path):
    elf = compile_program(tmp_path, HARDENED)
    for name, check in CHECKS.items():
        ok, detail = check(elf)
        assert ok, "%s: %s" % (name, detail)
    assert "__snprintf_chk" in elf.fortified()
    assert not elf.sanitized()


@pytest.mark.parametrize("weakness", sorted(WEAKENED))
def test_checker_fails_a_weakened_program(tmp_path, weakness):
    remove, add, failing = WEAKENED[weakness]
    flags = [f for f in HARDENED if f not in remove] + add
    elf = compile_program(tmp_path, flags)
    for name, check in CHECKS.items():
        ok, detail = check(elf)
        if name == failing:
            assert not ok, "%s passed without %s" % (name, " ".join(remove))
        else:
            assert ok, "%s failed too: %s" % (name, detail)
