"""Where things are in the checkout, for tests in any folder."""

from __future__ import annotations

from pathlib import Path

#: The checkout: the folder holding nettools/, tests/ and recipes/.
ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
RECIPES = ROOT / "recipes"
#: Feeds in every format feedparser reads, served by the feeds tests and recipes.
FEED_FIXTURES = TESTS / "tools" / "feeds" / "fixtures"
