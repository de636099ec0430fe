"""Which schedulers and persistence engines this kernel can use, checked
before a restore changes anything.

Strategy: the kernel finds a scheduler NAME by the module ``ip_vs_NAME``
(a persistence engine by ``ip_vs_pe_NAME``): one registered already, or
one it loads on first use through its module helper
(``/proc/sys/kernel/modprobe``, run as ``modprobe -q -- MODULE``).  So a
name is available when its module is loaded (``/proc/modules``, or
``/sys/module/MODULE`` for one built in), or when that same helper, asked
for a dry run (``-n``), finds it.  Module loading switched off
(``/proc/sys/kernel/modules_disabled``, an empty helper) means only what is
loaded counts.  When the helper cannot be asked, the answer is "unknown"
and is reported as not checked, never guessed.

Nothing here changes the kernel: the dry run loads nothing.  The names the
kernel itself ships (``SCHEDULERS``, ``ENGINES``) give the "did you mean"
hint.
"""

from __future__ import annotations

import os

from ipvsctl.vocab import ENGINES, SCHEDULERS  # noqa: F401 (the kernel's own names)

AVAILABLE, MISSING, UNKNOWN = "available", "missing", "unknown"

_PROC_MODULES = "/proc/modules"
_SYS_MODULE = "/sys/module"
_HELPER = "/proc/sys/kernel/modprobe"
_DISABLED = "/proc/sys/kernel/modules_disabled"


def module_name(kind: str, name: str) -> str:
    """The module the kernel asks for: ip_vs_NAME or ip_vs_pe_NAME."""
    return f"ip_vs_pe_{name}" if kind == "pe" else f"ip_vs_{name}"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class Probe:
    """Answers (state, reason) per module, each module asked once.

    The file paths are attributes so that tests can point them elsewhere.
    """

    def __init__(self, proc_modules: str = _PROC_MODULES, sys_module: str = _SYS_MODULE,
                 helper_file: str = _HELPER, disabled_file: str = _DISABLED):
        self.proc_modules = proc_modules
        self.sys_module = sys_module
        self.helper_file = helper_file
        self.disabled_file = disabled_file
        self._loaded: set[str] | None = None
        self._answers: dict[str, tuple[str, str]] = {}

    def loaded(self) -> set[str]:
        if self._loaded is None:
            text = _read(self.proc_modules) or ""
            self._loaded = {line.split(" ", 1)[0] for line in text.splitlines() if line}
        return self._loaded

    def state(self, module: str) -> tuple[str, str]:
        answer = self._answers.get(module)
        if answer is None:
            answer = self._answers[module] = self._state(module)
        return answer

    def _state(self, module: str) -> tuple[str, str]:
        if module in self.loaded() or os.path.isdir(os.path.join(self.sys_module, module)):
            return AVAILABLE, "loaded"
        if (_read(self.disabled_file) or "0").strip() == "1":
            return MISSING, (f"module {module} is not loaded, and this kernel loads no more "
                             f"modules ({self.disabled_file} is 1)")
        helper = (_read(self.helper_file) or "").strip()
        if not helper:
            return MISSING, (f"module {module} is not loaded, and the kernel has no module "
                             f"loader ({self.helper_file} is empty)")
        import subprocess

        try:
            r = subprocess.run([helper, "-n", "-q", "--", module], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            return UNKNOWN, f"could not ask the kernel's module loader {helper} about {module}: {e}"
        if r.returncode == 0:
            return AVAILABLE, f"loadable by {helper}"
        return MISSING, f"module {module} is not loaded, and {helper} does not find it"


def _hint(name: str, known: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "the kernel's are " + ", ".join(known)


def check(kind: str, name: str, probe: Probe) -> tuple[str, str]:
    """(state, message) for scheduler (kind 'scheduler') or engine ('pe') NAME.

    The message says what was found: for MISSING, a sentence to show the
    user with a hint; for UNKNOWN, why it could not be checked.
    """
    module = module_name(kind, name)
    state, reason = probe.state(module)
    what = "scheduler" if kind == "scheduler" else "persistence engine"
    if state == MISSING:
        known = SCHEDULERS if kind == "scheduler" else ENGINES
        hint = "" if name in known else f"; {_hint(name, known)}"
        return state, f"{what} '{name}' is not available: {reason}{hint}"
    return state, reason


def names_in(service) -> list[tuple[str, str]]:
    """(kind, name) of the scheduler and engine a Service asks for."""
    out = [("scheduler", service.scheduler)]
    if service.pe_name:
        out.append(("pe", service.pe_name))
    return out


class Report:
    """What a check of many services found: each name that is not available
    with the places that ask for it, and every other name checked."""

    def __init__(self):
        self.refused: dict[tuple[str, str], tuple[str, list]] = {}  # -> (message, wheres)
        self.available: dict[str, list[str]] = {"scheduler": [], "pe": []}
        self.unchecked: list[str] = []

    def refusals(self, limit: int = 10) -> list[str]:
        """One line per missing name: where it is first asked for, the
        message, and the other places."""
        out = []
        for message, wheres in self.refused.values():
            others = ", ".join(str(w) for w in wheres[1:limit])
            more = ", ..." if len(wheres) > limit else ""
            also = f" (also {others}{more})" if others else ""
            out.append(f"{wheres[0]}: {message}{also}")
        return out


def check_services(located, probe: Probe | None = None) -> Report:
    """Check every (where, Service) of ``located``, each name once."""
    probe = probe or Probe()
    report = Report()
    seen: set[tuple[str, str]] = set()
    for where, service in located:
        for kind, name in names_in(service):
            key = (kind, name)
            if key in report.refused:
                report.refused[key][1].append(where)
            if key in seen:
                continue
            seen.add(key)
            state, message = check(kind, name, probe)
            if state == MISSING:
                report.refused[key] = (message, [where])
            elif state == UNKNOWN:
                report.unchecked.append(message)
            else:
                report.available[kind].append(name)
    return report
