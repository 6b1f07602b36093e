"""Make the subject belong in the scene: light and colour harmonisation, light direction, shadows, edges.

    placement  `place_subject`, the compose step of the replace pipeline: shadow, harmonisation, compose, edges
    color      white balance, exposure and contrast matched to the scene's light in CIELAB, bounded
    light      the light direction of a plate and of a subject; the soft directional shading towards the scene's
    shadow     contact and cast shadows from the matte and the light, on the scene's floor
    edges      light wrap, grain and boundary softness

The classical harmoniser here is the default and, for now, the only one (`engines.harmonize` is "classical"); a
learned one would replace `color.match_colours` behind that name.
"""

from replate.harmonize.light import LightDirection
from replate.harmonize.placement import (
    HARMONIZER,
    SHADOW_MODES,
    Placed,
    Placement,
    check_placement,
    default_shadow,
    lighting_info,
    place_subject,
    warm_up,
)

__all__ = [
    "HARMONIZER",
    "SHADOW_MODES",
    "LightDirection",
    "Placed",
    "Placement",
    "check_placement",
    "default_shadow",
    "lighting_info",
    "place_subject",
    "warm_up",
]
