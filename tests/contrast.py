"""WCAG AA for text, measured in the browser: every visible text's colour against the background it is drawn on.

    failures = check_page(page)      # [] when every text passes; else one line per failing text, with the ratio

AA: contrast at least 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold); text at least 11 px. Disabled controls
are exempt (WCAG 1.4.3), as is text hidden from view or from assistive technology. The background is the nearest
ancestor's solid colour (a translucent one is blended over what lies below it); text over an image is not judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MIN_SIZE = 11  # px

CHECK = (Path(__file__).parent / "contrast.js").read_text()



def check_page(page: Any) -> list[str]:
    """Every visible text on the page that fails WCAG AA contrast or the minimum size, one line each."""
    return list(dict.fromkeys(page.evaluate(CHECK, MIN_SIZE)))
