from fuzz_tests.generators import TRIED


def pytest_terminal_summary(terminalreporter):
    if TRIED:
        shown = ", ".join(f"{name} {n}" for name, n in TRIED.items())
        terminalreporter.write_line(f"fuzz examples tried: {shown} (total {sum(TRIED.values())})")
