"""The shared vocabulary: data-set names onto model labels (ambiguous and unmatched reported), the uncertain-label
policy, and models/labels.py mapping model outputs through the same table."""

from __future__ import annotations

from cxrdemo.datasets.nih import NIH_CLASSES
import pytest

from cxrdemo.datasets.vocabulary import POLICIES, canonical, check_policy, map_names, nih_name, policy_target
from cxrdemo.errors import InputError
from cxrdemo.models.labels import map_labels

VINDR = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD", "Infiltration",
         "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion", "Pleural thickening", "Pneumothorax",
         "Pulmonary fibrosis", "No finding"]
XRV18 = ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis", "Effusion",
         "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture",
         "Lung Opacity", "Enlarged Cardiomediastinum"]
CHEXPERT = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
            "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
            "Support Devices"]
CHESTXDET = ["Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "Diffuse Nodule", "Effusion", "Emphysema",
             "Fibrosis", "Fracture", "Mass", "Nodule", "Pleural Thickening", "Pneumothorax"]


def test_vindr_names_on_an_nih_model() -> None:
    m = map_names(VINDR, NIH_CLASSES)
    assert m.pairs["Pleural effusion"] == "Effusion"
    assert m.pairs["Pulmonary fibrosis"] == "Fibrosis"
    assert m.pairs["Pleural thickening"] == "Pleural_Thickening"
    assert m.ambiguous["Nodule/Mass"] == ("Nodule", "Mass") and "Nodule/Mass" not in m.pairs
    assert {"Aortic enlargement", "ILD", "Lung Opacity", "Other lesion", "No finding", "Calcification"} <= set(m.unmapped)
    assert any("Nodule/Mass" in n and "ambiguous" in n for n in m.notes)
    assert len(m.notes) == len(m.ambiguous) + len(m.unmapped)


def test_two_finding_name_scored_when_the_model_has_one_of_them_and_said_so() -> None:
    m = map_names(["Nodule/Mass"], ["Nodule", "Effusion"])
    assert m.pairs == {"Nodule/Mass": "Nodule"} and "only one" in m.notes[0]


def test_every_vocabulary_maps_onto_itself_and_xrv_names() -> None:
    for names in (CHEXPERT, CHESTXDET, XRV18, list(NIH_CLASSES)):
        m = map_names(names, names)
        assert m.pairs == {n: n for n in names} and not m.ambiguous and not m.unmapped
    m = map_names(["Airspace Opacity", "Pleural Effusion", "Enlarged Cardiomediastinum"], XRV18)
    assert m.pairs == {"Airspace Opacity": "Lung Opacity", "Pleural Effusion": "Effusion",
                       "Enlarged Cardiomediastinum": "Enlarged Cardiomediastinum"}


def test_an_alias_is_the_only_way_to_score_under_another_name() -> None:
    assert map_names(["Lung Opacity"], NIH_CLASSES).unmapped == ["Lung Opacity"]
    m = map_names(["Lung Opacity"], NIH_CLASSES, extra={"lung opacity": "Pneumonia"})
    assert m.pairs == {"Lung Opacity": "Pneumonia"} and m.aliased == m.pairs and "alias" in m.notes[0]
    bad = map_names(["Lung Opacity"], NIH_CLASSES, extra={"Lung Opacity": "Opacity"})
    assert bad.unmapped == ["Lung Opacity"] and not bad.pairs


def test_canonical_and_nih_name() -> None:
    assert canonical("nodule/mass") == ("Nodule", "Mass")
    assert nih_name("Nodule/Mass") is None and nih_name("pleural-effusion") == "Effusion"
    assert nih_name("Infiltrate") == "Infiltration" and nih_name("Lung Opacity") is None and nih_name("") is None


def test_model_labels_through_the_shared_table() -> None:
    lm = map_labels(XRV18 + ["", "Nodule/Mass"])
    assert lm.nih[:14] == tuple(XRV18[:14])
    assert lm.nih[14:] == (None,) * 6  # Lung Lesion, Fracture, Lung Opacity, Enl. Card., '' and Nodule/Mass
    assert lm.shown[-2:] == ("output 18", "Nodule/Mass")
    assert map_labels(CHEXPERT).scored == ["Cardiomegaly", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
                                           "Pneumothorax", "Effusion"]


def test_uncertain_policy_is_data() -> None:
    assert {p: [policy_target(v, p) for v in (1, 0, -1)] for p in POLICIES} == {
        "ignore": [1, 0, None], "positive": [1, 0, 1], "negative": [1, 0, 0]}  # None: left out of that class only
    assert check_policy("positive") == "positive"
    with pytest.raises(InputError, match="--uncertain 'maybe': one of ignore, positive, negative"):
        check_policy("maybe")


def test_layout_names_match_the_registry() -> None:
    from cxrdemo.datasets.loader import REGISTRY
    from cxrdemo.datasets.names import LAYOUT_NAMES, strip_layout

    assert set(LAYOUT_NAMES) == set(REGISTRY)
    assert strip_layout("vindr:a/b.csv") == "a/b.csv" and strip_layout("C:/x.csv") == "C:/x.csv"


def test_cli_early_check_strips_a_layout_prefix(tmp_path) -> None:
    import pytest

    from cxrdemo.cli import check_path_options
    from cxrdemo.errors import InputError

    ok = tmp_path / "annotations_train.csv"
    ok.write_text("x")
    check_path_options(["--labels", f"vindr:{ok}", "--boxes=coco:" + str(ok)], ("--labels", "--boxes"))
    with pytest.raises(InputError, match="missing.csv does not exist"):
        check_path_options(["--labels", f"vindr:{tmp_path / 'missing.csv'}"], ("--labels",))
