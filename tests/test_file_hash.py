"""utils/file_hash.py: a file read in blocks gives hashlib's digest of its whole bytes."""
import hashlib

import pytest

from utils.file_hash import file_digest


@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])   # empty, one block, two blocks
def test_digest_of_the_whole_file(tmp_path, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_digest(str(path)) == hashlib.sha1(data).hexdigest()
    assert file_digest(str(path), "sha256") == hashlib.sha256(data).hexdigest()
