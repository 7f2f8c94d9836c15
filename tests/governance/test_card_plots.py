"""The model card shows the training run's plots: linked beside card.md, embedded in the
self-contained card.html."""

from __future__ import annotations

from mloop.governance.cards import write_card
from tests.support import govkit


def test_card_links_and_embeds_the_run_plots(mloop_home, tmp_path):
    result = govkit.train_version(mloop_home, tmp_path / "churn.csv")
    card, markdown, page = write_card(
        mloop_home, result.ref, tmp_path / "card", owner="alice", intended_use="retention"
    )
    assert {"roc", "precision_recall", "confusion_matrix", "calibration"} <= set(card.plots)
    text = markdown.read_text()
    assert "## Plots" in text and "![roc](plots/roc.png)" in text
    assert (tmp_path / "card" / "plots" / "roc.png").read_bytes() == card.plots["roc"]
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == len(card.plots)
