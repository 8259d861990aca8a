"""utils/run_settings.py: a folder's settings recorded once; a rerun with others refused, naming them."""
import json

import pytest

from utils.run_settings import check_or_record


def test_recorded_then_checked(tmp_path):
    path = tmp_path / "settings.json"
    check_or_record(str(path), {"fps": "24", "short_side": 0}, "OUT", write=False)
    assert not path.exists()  # write=False (a non-zero rank) only checks
    check_or_record(str(path), {"fps": "24", "short_side": 0}, "OUT")
    assert json.loads(path.read_text()) == {"fps": "24", "short_side": 0}
    check_or_record(str(path), {"short_side": 0, "fps": "24"}, "OUT")  # the same settings: accepted
    with pytest.raises(ValueError, match=r"OUT holds files extracted with other settings .*fps: '24' there, "
                                         r"'12' now"):
        check_or_record(str(path), {"fps": "12", "short_side": 0}, "OUT")
    with pytest.raises(ValueError, match=r"quality: None there, 90 now"):  # a key the file lacks
        check_or_record(str(path), {"fps": "24", "short_side": 0, "quality": 90}, "OUT")


def test_unreadable_record_is_named(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"fps": ')
    with pytest.raises(ValueError, match=r"settings\.json is not valid JSON"):
        check_or_record(str(path), {"fps": "24"}, "OUT")
