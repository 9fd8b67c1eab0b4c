import contextlib
import io

from conformance.framework.catalogue import BEGIN, END, ROOT, markdown, readme_with_table


def test_readme_test_table_is_current():
    with contextlib.redirect_stdout(io.StringIO()):
        table = markdown()
    readme = (ROOT / "README.md").read_text()
    assert BEGIN in readme and END in readme
    assert readme_with_table(readme, table) == readme, (
        "README.md's test table is stale: run `python -m conformance.framework.catalogue --write`"
    )
