"""``python -m tocsin receivers``: who listens to what, as text, JSON and a Mermaid flowchart.

Each test builds a small application in a temporary directory and runs the command there in
a subprocess, as a user would, so nothing it imports touches the test process.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tocsin.__main__ import main

EVENTS = """
    from tocsin import Signal

    order_placed = Signal(name="order_placed", arguments=["order"])
    unused = Signal(name="unused")


    class Order:
        paid = Signal(name="paid")
"""

SIGNALS = """
    from shop.events import Order, order_placed
    from tocsin import receiver
    from tocsin.catalogue import post_save


    @receiver(order_placed)
    def send_receipt(sender, order, **kwargs):
        pass


    @receiver(order_placed, sender="web", weak=False, dispatch_uid="shop.audit")
    async def audit(sender, order, **kwargs):
        pass


    @receiver(post_save, sender=Order)
    def reindex(sender, **kwargs):
        pass
"""

PAYMENTS = """
    from shop.events import Order
    from tocsin import receiver


    @receiver(Order.paid)
    def book_payment(sender, **kwargs):
        pass
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """shop/ with its signals in events.py, receivers in signals.py and in a subpackage's
    signals.py; broken/, which cannot be imported."""
    files = {
        "shop/__init__.py": "",
        "shop/events.py": EVENTS,
        "shop/signals.py": SIGNALS,
        "shop/payments/__init__.py": "",
        "shop/payments/signals.py": PAYMENTS,
        "broken/__init__.py": "raise ImportError('no database configured')\n",
    }
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


def run(
    project: Path, *arguments: str, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(command or [sys.executable, "-m", "tocsin"]), "receivers", *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )


EXPECTED_TEXT = """\
shop.events.Order.paid  (1 receiver)
  shop.payments.signals.book_payment  shop/payments/signals.py:6  sender=any  weak  sync
shop.events.order_placed  (2 receivers)
  shop.signals.send_receipt  shop/signals.py:7  sender=any  weak  sync
  shop.signals.audit  shop/signals.py:12  sender='web'  strong  dispatch_uid='shop.audit'  async
tocsin.catalogue.post_save  (1 receiver)
  shop.signals.reindex  shop/signals.py:17  sender=<class 'shop.events.Order'>  weak  sync
"""


def test_text_lists_each_signal_with_its_connections(project: Path) -> None:
    result = run(project, "shop")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == EXPECTED_TEXT


def test_all_also_lists_the_signals_nobody_listens_to(project: Path) -> None:
    result = run(project, "shop", "--all")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "shop.events.unused  (no receivers)" in lines
    assert "tocsin.catalogue.pre_init  (no receivers)" in lines
    # Every catalogue signal is there, and each signal once, under its defining module's name.
    signals = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert len(signals) == len(set(signals)) == 24 + 3
    assert not any(name.startswith("shop.signals.") for name in signals)


def test_a_module_target_is_imported_without_autodiscovery(project: Path) -> None:
    result = run(project, "shop.events")
    assert result.returncode == 0
    assert (
        result.stdout
        == "No receivers are connected to the signals found (--all lists them anyway).\n"
    )
    assert "shop.events.unused  (no receivers)" in run(project, "shop.events", "--all").stdout


def test_json_is_one_document_with_every_field(project: Path) -> None:
    result = run(project, "shop", "--json")
    assert (result.returncode, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    signals_file = str(project / "shop" / "signals.py")
    assert [signal["signal"] for signal in document] == [
        "shop.events.Order.paid",
        "shop.events.order_placed",
        "tocsin.catalogue.post_save",
    ]
    assert document[1]["connections"] == [
        {
            "receiver": "shop.signals.send_receipt",
            "module": "shop.signals",
            "file": signals_file,
            "line": 7,
            "sender": None,
            "weak": True,
            "dispatch_uid": None,
            "is_async": False,
        },
        {
            "receiver": "shop.signals.audit",
            "module": "shop.signals",
            "file": signals_file,
            "line": 12,
            "sender": "'web'",
            "weak": False,
            "dispatch_uid": "'shop.audit'",
            "is_async": True,
        },
    ]
    assert document[2]["connections"][0]["sender"] == "<class 'shop.events.Order'>"
    with_idle = json.loads(run(project, "shop", "--json", "--all").stdout)
    assert {"signal": "shop.events.unused", "connections": []} in with_idle


# A line of the flowchart the command writes: ids are generated, labels quoted, and a label
# holds no character that could end it or be read as markup, only entity codes for them.
_LABEL = r'"(?:[^"<>#&;|`\n]|#\d+;)*"'
_MERMAID_LINE = re.compile(
    rf"flowchart LR"
    rf"|    (?P<signal>s\d+)\(\[{_LABEL}\]\)"
    rf"|    subgraph (?P<group>m\d+)\[{_LABEL}\]"
    rf"|    (?:    )?(?P<receiver>r\d+)\[{_LABEL}\]"
    rf"|    end"
    rf"|    (?P<source>s\d+) -->(?:\|{_LABEL}\|)? (?P<target>r\d+)"
)


def check_mermaid(chart: str) -> list[tuple[str, str]]:
    """Fail unless ``chart`` is made of the lines above, with balanced subgraphs and edges
    between declared nodes; return the edges."""
    lines = chart.splitlines()
    assert lines[0] == "flowchart LR"
    declared: set[str] = set()
    edges: list[tuple[str, str]] = []
    depth = 0
    for line in lines:
        match = _MERMAID_LINE.fullmatch(line)
        assert match, f"not a line this chart should have: {line!r}"
        if match["group"]:
            depth += 1
        elif line == "    end":
            depth -= 1
        elif match["signal"] or match["receiver"]:
            declared.add(match["signal"] or match["receiver"])
        elif match["source"]:
            edges.append((match["source"], match["target"]))
        assert depth in (0, 1)
    assert depth == 0
    assert {node for edge in edges for node in edge} <= declared
    return edges


def test_mermaid_draws_an_edge_per_connection_grouped_by_module(project: Path) -> None:
    result = run(project, "shop", "--mermaid")
    assert (result.returncode, result.stderr) == (0, "")
    chart = result.stdout
    assert len(check_mermaid(chart)) == 4
    assert '    subgraph m1["shop.payments.signals"]\n        r1["book_payment"]\n    end' in chart
    assert (
        '    subgraph m2["shop.signals"]\n'
        '        r2["send_receipt"]\n'
        '        r3["audit"]\n'
        '        r4["reindex"]\n'
        "    end"
    ) in chart
    assert '    s2(["shop.events.order_placed"])' in chart
    assert "    s2 --> r2\n" in chart
    assert '    s2 -->|"sender=#39;web#39;, strong' not in chart  # quotes are not escaped...
    assert "    s2 -->|\"sender='web', strong, dispatch_uid='shop.audit', async\"| r3\n" in chart
    # ...but angle brackets are, or the label would be read as HTML and vanish.
    assert "    s3 -->|\"sender=#60;class 'shop.events.Order'#62;\"| r4\n" in chart


def test_mermaid_escapes_whatever_a_name_or_repr_contains(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(
        textwrap.dedent(
            """
            from tocsin import Signal


            class Sender:
                def __repr__(self):
                    return 'Sender "quoted" | piped; #hash & `tick`\\nend'


            SENDER = Sender()
            odd = Signal(name="odd")


            def handler(sender, **kwargs):
                pass


            odd.connect(handler, sender=SENDER)
            """
        ),
        encoding="utf-8",
    )
    result = run(tmp_path, "odd", "--mermaid")
    assert result.returncode == 0
    [edge_line] = [line for line in result.stdout.splitlines() if "-->" in line]
    assert edge_line == (
        '    s1 -->|"sender=Sender #34;quoted#34; #124; piped#59; #35;hash #38; #96;tick#96; end"'
        "| r1"
    )
    check_mermaid(result.stdout)


def test_a_target_that_fails_gets_one_line_and_status_1_and_the_rest_is_listed(
    project: Path,
) -> None:
    result = run(project, "broken", "shop", "missing_package")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "python -m tocsin receivers: cannot import 'broken': ImportError: no database configured",
        "python -m tocsin receivers: cannot import 'missing_package': ModuleNotFoundError: "
        "No module named 'missing_package'",
    ]
    assert result.stdout == EXPECTED_TEXT
    json_result = run(project, "broken", "shop", "--json")
    assert json_result.returncode == 1
    assert len(json.loads(json_result.stdout)) == 3  # stdout stays one valid document


def test_a_target_that_exits_or_fails_with_a_long_message_still_gets_one_line(
    project: Path,
) -> None:
    (project / "quits.py").write_text("raise SystemExit('set SHOP_DATABASE first')\n")
    (project / "wordy.py").write_text("raise RuntimeError('first line\\n  second line')\n")
    result = run(project, "quits", "wordy", "shop")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "python -m tocsin receivers: cannot import 'quits': SystemExit: set SHOP_DATABASE first",
        "python -m tocsin receivers: cannot import 'wordy': RuntimeError: first line second line",
    ]
    assert result.stdout == EXPECTED_TEXT


def test_a_failing_signals_module_inside_a_target_is_reported(project: Path) -> None:
    (project / "shop" / "payments" / "signals.py").write_text(
        "from shop.events import no_such_signal\n", encoding="utf-8"
    )
    result = run(project, "shop")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "python -m tocsin receivers: cannot import 'shop': ImportError: cannot import name "
        "'no_such_signal'"
    )
    assert "shop.signals.send_receipt" in result.stdout


def test_entry_points_are_loaded_only_when_asked(project: Path) -> None:
    info = project / "loyalty-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: loyalty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tocsin.receivers]\npoints = loyalty\n")
    (project / "loyalty.py").write_text(
        textwrap.dedent(
            """
            from shop.events import order_placed
            from tocsin import receiver


            @receiver(order_placed)
            def add_points(sender, order, **kwargs):
                pass
            """
        ),
        encoding="utf-8",
    )
    assert "loyalty.add_points" not in run(project, "shop").stdout
    result = run(project, "shop", "--entry-points")
    assert result.returncode == 0
    assert "  loyalty.add_points  loyalty.py:6  sender=any  weak  sync\n" in result.stdout

    (project / "loyalty.py").write_text("raise RuntimeError('points service down')\n")
    failed = run(project, "shop", "--entry-points")
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "python -m tocsin receivers: cannot load the tocsin.receivers entry points: ImportError: "
        "entry point 'points' = 'loyalty' of distribution 'loyalty'"
    )
    assert failed.stdout == EXPECTED_TEXT


def test_the_console_script_does_the_same(project: Path) -> None:
    script = shutil.which("tocsin", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the tocsin console script is not installed beside this interpreter")
    # The console script does not put the current directory on sys.path; the command does.
    result = run(project, "shop", command=[script])
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == EXPECTED_TEXT


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["receivers", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--entry-points", "--all", "--json", "--mermaid", "TARGET"):
        assert option in text
    assert main([]) == 0
    assert "receivers" in capsys.readouterr().out


def test_json_and_mermaid_cannot_be_combined(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["receivers", "tocsin", "--json", "--mermaid"])
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# --- docs/wiring.md ------------------------------------------------------------------------------

WIRING_PAGE = Path(__file__).resolve().parent.parent / "docs" / "wiring.md"


def fenced_block(page: str, language: str, after: str) -> str:
    """The first ```language block of ``page`` that comes after the text ``after``."""
    start = page.index(after)
    match = re.compile(rf"^```{language}\n(.*?)^```", re.DOTALL | re.MULTILINE).search(page, start)
    assert match, f"no {language} block after {after!r}"
    return match.group(1)


def test_the_output_shown_in_the_docs_is_what_the_command_prints(tmp_path: Path) -> None:
    page = WIRING_PAGE.read_text(encoding="utf-8")
    # The page's first block writes the example application to a directory of its own.
    setup = fenced_block(page, "python", "## The example application")
    setup = setup.replace("root = Path(tempfile.mkdtemp())", f"root = Path({str(tmp_path)!r})")
    setup = setup.replace("sys.path.insert(0, str(root))", "")
    exec(compile(setup, str(WIRING_PAGE), "exec"), {})
    text = run(tmp_path, "shop")
    assert text.stdout == fenced_block(page, "text", "python -m tocsin receivers shop\n")
    chart = run(tmp_path, "shop", "--mermaid")
    assert chart.stdout == fenced_block(page, "mermaid", "`--mermaid` prints")
