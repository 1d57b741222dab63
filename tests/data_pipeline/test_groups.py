"""Patient ids from file names and duplicate merging."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.groups import duplicate_sets, merge_duplicate_groups, name_groups, patient_id


@pytest.mark.parametrize("name, expected", [
    ("person1_bacteria_1.jpeg", "person1"),
    ("person447_virus_921_1.jpeg", "person447"),  # the odd one in the README
    ("person1180_virus_2010.jpeg", "person1180"),
    ("IM-0115-0001.jpeg", "IM-115"),
    ("IM-0640-0001-0001.jpeg", "IM-640"),  # second counter
    ("NORMAL2-IM-0587-0001-0002.jpeg", "NORMAL2-IM-587"),
    ("train/NORMAL/NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
    ("im-0115-0002.JPEG", "IM-115"),
    ("scan_0001.png", None),
    ("personal_photo.jpeg", None),
    ("IMG-0001.jpeg", None),
])
def test_patient_id(name, expected):
    assert patient_id(name) == expected


def test_name_groups_prefix_and_no_collisions():
    paths = ["train/NORMAL/IM-0012-0001.jpeg", "train/NORMAL/NORMAL2-IM-0012-0001.jpeg",
             "train/PNEUMONIA/person12_virus_3.jpeg", "train/NORMAL/IM-0012-0002.jpeg",
             "train/NORMAL/odd.png", "test/NORMAL/odd.png"]
    g = name_groups(paths, ["NORMAL", "NORMAL", "PNEUMONIA", "NORMAL", "NORMAL", "NORMAL"])
    assert g[0] == g[3] == "NORMAL/IM-12"
    assert len({g[0], g[1], g[2]}) == 3
    assert g[4] != g[5] and g[4].startswith("NORMAL/file:")


def test_duplicates_merge_whole_groups():
    paths = ["a/person1_x_1", "a/person1_x_2", "a/person2_x_3", "a/person2_x_4", "a/person3_x_5"]
    digests = ["h1", "h2", "h1", "h4", "h5"]
    dups = duplicate_sets(paths, digests)
    assert dups == [["a/person1_x_1", "a/person2_x_3"]]
    groups = np.array(["C/person1", "C/person1", "C/person2", "C/person2", "C/person3"])
    merged = merge_duplicate_groups(groups, paths, dups)
    assert len(set(merged[:4])) == 1 and merged[4] == "C/person3"
    assert list(merge_duplicate_groups(groups, paths, [])) == list(groups)
