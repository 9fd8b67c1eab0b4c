import contextlib
import io

from conformance.framework.readme_table import SECTION, markdown
from conformance.infra.readme import README, with_section


def test_readme_test_table_is_current():
    with contextlib.redirect_stdout(io.StringIO()):
        table = markdown()
    readme = README.read_text()
    assert with_section(readme, SECTION, table + "\n") == readme, (
        "README.md's test table is stale: run `python -m conformance.framework.readme_table --write`"
    )
