"""Colours of the review figures: colour-blind-safe palette and colour maps.

References
----------
Okabe, M., Ito, K. (2008). Color Universal Design (CUD): how to make figures and
presentations that are friendly to colorblind people.
Nuñez, J. R., Anderton, C. R., Renslow, R. S. (2018). Optimizing colormaps with
consideration for color vision deficiency (cividis). PLoS ONE 13(7), e0199239.
"""

from __future__ import annotations

__all__ = ["OKABE_ITO", "HEIGHT_CMAP", "DIVERGING_CMAP", "SAME_COLOUR", "DIFFERENT_COLOUR",
           "CONGRUENT_COLOUR", "OTHER_CELL_COLOUR"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9",
    "bluish_green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
    "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "grey": "#999999",
}
#: Colour map for heights (perceptually uniform, readable with colour-vision deficiency).
HEIGHT_CMAP = "cividis"
#: Diverging colour map for agreement / differences (colour-blind safe).
DIVERGING_CMAP = "PuOr"
#: Colours of the same-firearm and different-firearm reference distributions.
SAME_COLOUR = OKABE_ITO["blue"]
DIFFERENT_COLOUR = OKABE_ITO["vermillion"]
#: Congruent cells and the other cells.
CONGRUENT_COLOUR = OKABE_ITO["bluish_green"]
OTHER_CELL_COLOUR = OKABE_ITO["grey"]
