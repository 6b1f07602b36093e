import pytest

from replate.errors import ImageCorrupt, ReplateError, SubjectNotFound, format_error, parse_error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image_corrupt: the PNG ends early", ImageCorrupt),
        ("[request id: 7] subject_not_found: nothing separates from the backdrop", SubjectNotFound),
        ("Failed to process the request(s) for model instance", ReplateError),
        ("made_up_code: something", ReplateError),
    ],
)
def test_parse_error_recovers_the_code(text: str, expected: type[ReplateError]) -> None:
    error = parse_error(text)
    assert type(error) is expected


def test_format_then_parse_round_trips() -> None:
    error = parse_error(format_error(SubjectNotFound("no subject")))
    assert isinstance(error, SubjectNotFound)
    assert error.message == "no subject"
