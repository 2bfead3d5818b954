import threading

import pytest

from dawm.bids.entities import BidsName, parse_name
from dawm.bids.layout import discover_sessions
from dawm.errors import DawmError, InputError
from dawm.parallel import map_threads, run_all


def test_names_are_written_in_spec_order():
    name = BidsName({"part": "mag", "inv": "1", "ses": "01", "sub": "ms001"}, "MP2RAGE")
    assert name.filename == "sub-ms001_ses-01_inv-1_part-mag_MP2RAGE.nii.gz"
    assert name.relpath == "sub-ms001/ses-01/anat/" + name.filename
    der = name.with_(inv=None, part=None, space="session", desc="preproc", suffix="UNIT1")
    assert der.filename == "sub-ms001_ses-01_space-session_desc-preproc_UNIT1.nii.gz"
    assert name.with_(from_="subject", to="scanner", mode="image", suffix="xfm", extension=".json").filename.endswith(
        "from-subject_to-scanner_mode-image_xfm.json"
    )


def test_parse_round_trip_and_errors():
    n = parse_name("sub-01_ses-02_flip-1_mt-on_MTS.nii.gz")
    assert n.entities == {"sub": "01", "ses": "02", "flip": "1", "mt": "on"} and n.suffix == "MTS"
    assert parse_name(n.filename) == n
    with pytest.raises(InputError):
        parse_name("notbids.nii.gz")
    with pytest.raises(InputError):
        BidsName({"sub": "a_b"}, "T1w")


def test_discover_needs_a_dataset(tmp_path):
    with pytest.raises(InputError, match="dataset_description"):
        discover_sessions(tmp_path)


def _maybe_fail(x):
    if x == 2:
        raise DawmError("bad subject 2")
    if x == 3:
        raise RuntimeError("boom")
    return x * 10


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_all_reports_failures_and_keeps_going(jobs):
    out = run_all(_maybe_fail, [1, 2, 3, 4], jobs=jobs)
    assert [o.result for o in out] == [10, None, None, 40]
    assert out[1].error == "bad subject 2"
    assert "RuntimeError: boom" in out[2].error


def test_run_all_on_a_dask_local_cluster():
    out = run_all(_maybe_fail, [1, 2], jobs=1, backend="dask")
    assert out[0].result == 10 and not out[1].ok


def test_map_threads_keeps_the_order_and_raises_the_first_error():
    assert map_threads(lambda x: x * 10, [3, 1, 2]) == [30, 10, 20]
    assert map_threads(lambda x: x, []) == []
    main = threading.get_ident()
    assert map_threads(lambda _: threading.get_ident(), [1, 2], max_workers=1) == [main, main]  # one worker: this thread

    def fail_on_odd(x):
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    with pytest.raises(ValueError, match="odd 1"):
        map_threads(fail_on_odd, [0, 1, 2, 3])
