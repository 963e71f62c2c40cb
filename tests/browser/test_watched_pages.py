"""The ``pages`` fixture fails a test on console errors and uncaught exceptions, except those the
test said to expect."""

import pytest

pytestmark = [pytest.mark.browser]

BROKEN_PAGE = ("data:text/html,<script>console.error('status of 401 expected');"
               "console.error('boom'); setTimeout(() => { throw new Error('late'); }, 50);</script>")


def test_console_errors_and_uncaught_exceptions_fail_the_test(pages):
    pages.expect_console_error("status of 401")
    page = pages.open("data:text/html,<p>fine</p>")
    with page.expect_event("pageerror"):
        page.goto(BROKEN_PAGE)
    assert len(pages.problems) == 2, pages.problems
    assert "console error 'boom'" in pages.problems[0] and "uncaught late" in pages.problems[1]
    with pytest.raises(pytest.fail.Exception, match="boom"):
        pages.check()
    pages.problems.clear()  # seen: the fixture's own check at teardown must pass
