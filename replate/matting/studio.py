"""Classical matting for subjects on plain or gradient studio backdrops (product sweeps, seamless paper).

Method, and why each step is there:

1. Backdrop model. A full cubic surface in (x, y) per channel is fitted robustly (iterative outlier trimming) to
   the image border on a ~320 px thumbnail, so the parts of the border the subject covers (a product on the bottom
   edge, a person cut at the shoulders) drop out. A cubic follows more of the S-shaped wall-to-floor curve of a
   sweep than a quadratic and is still fully determined by the border alone. The model is then refitted, a few
   rounds, on every thumbnail pixel it explains as well as the border, so it is anchored inside the frame too.
   The noise level is the robust spread of the border residuals at full resolution. A border that no smooth
   surface explains raises SubjectNotFound.
2. Segmentation at full resolution on a 3x3-averaged image. A pixel is backdrop-like when it is within noise of the
   model, or when it is a darkened copy of it (same chromaticity, lower brightness: a cast shadow; slightly brighter
   is allowed too, for when a shadow along the whole bottom border has been learnt by the model). Shadow-like
   pixels only count where no sharp luminance edge is crossed, and a backdrop region must touch the border or be a
   large enclosed hole that matches the backdrop (a mug handle); so a soft shadow joins the backdrop while the grey
   flank of a product, walled in by its silhouette edge, stays subject. A smaller enclosed region that matches the
   backdrop opens only where a segmenter's mask (given by `auto`) says backdrop too: alone, colour cannot tell the
   hole in a pendant or a chain link from a white label on a white product. The same mask keeps a pale subject that
   looks like the backdrop lit a little brighter (a white pendant on a light grey sweep). Small specks are dropped.
3. Trimap: the subject eroded is definite foreground, the backdrop eroded definite backdrop, the rest a band a few
   pixels wide. Away from the outline the subject is treated as opaque (which keeps textured and highlighted
   products solid), except where step 4c finds a translucent region.
4. Alpha in the band from the compositing equation I = aF + (1 - a)B with both F and B local: F is spread from
   nearby definite-foreground colours (normalised box blurs at reduced resolution, with a wider second reach for
   band pixels that a cast shadow beside the outline has pushed away from the opaque core), B from nearby
   definite-backdrop colours by a local linear fit (first-order normalised convolution), so a contact shadow or
   vignette is part of B and B is not biased light where the known backdrop lies on one side of a shadow gradient;
   that bias once gave a faint, light-coloured alpha line a few px outside the foot of a subject. a = (I - B).(F -
   B) / |F - B|^2. Where |F - B| is too small to trust, or no opaque core is near (a string thinner than the band),
   a guided-filtered trimap (guided by the image) is used instead. The equation's alpha is not guided-filtered
   afterwards: on the synthetic shots in the tests that softened 1-px anti-aliased outlines (outline error 0.25
   instead of 0.03). Definite regions are exactly 0 and 255, and estimates within 2 % of either end, or within
   2.5 noise-induced errors (noise / |F - B|, at most 10 %), snap to it.
4b. Porous parts (hair, fur): where the subject's outline is full of gaps (backdrop that a closing of ~long side
   / 200 fills makes up 2 % of a window of ~long side / 50), the pixels between the strands were taken for subject
   and the whole mass came out opaque. There alpha is lowered to the pixel's distance from the local backdrop over
   the largest such distance among porous pixels nearby (the densest strands are taken as opaque: difference
   matting on a known backdrop); values within 10 % of 1 stay 1, so a solid part beside a notch stays opaque.
4c. Translucent interior (a glass body inside its rim): a region of the definite subject that is faint (nearer the
   local backdrop than half the densest subject nearby), flat (as smooth as the backdrop's noise), enclosed by a
   ring of subject at least twice as far from the backdrop, and whose colour lies between the backdrop's and the
   ring's (the ring's offsets from the backdrop point the region's way, as a thin layer of the rim's material
   does) gets alpha = its distance from the backdrop over the ring's, taking the ring as opaque. Each cue is there
   for an opaque part it would otherwise thin: faint and flat alone opened a white strap on a red suit (texture),
   a pale screen in a laptop's bezel and a pale letter on an app icon (colour not between backdrop and ring).
5. Foreground colours F = B + (I - B) / a in the band (blended towards the spread F for very low a, where the
   division amplifies noise); exactly the input where alpha is 255.
6. Shading: the local backdrop B over the clean model, as luminance ratio, with a dead zone of the noise and model
   error, so only real cast shadows come through.

Known limits: a subject that looks like a darker copy of the backdrop behind soft edges (a pale grey box with a
blurred outline) is taken for a shadow; a white label on a white product can open as a hole if it is large and
matches the backdrop within noise; a translucent part not enclosed by a denser rim comes out opaque, and one under
a denser rim comes out denser than it is (the rim is taken as opaque: a glass body of alpha 0.2 under a rim of 0.68
gets ~0.3); a flat, opaque region whose colour lies between the backdrop's and a denser frame's (a grey panel in a
black frame on a white sweep, not tested) would meet every cue of step 4c. A white or grey logo on a black mug did
not fire in a synthetic test (its own edge pixels, left out of the definite subject, fill its ring), but nothing
rules it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from replate.errors import SubjectNotFound
from replate.matting._matte import Matte, check_image
from replate.timing import Laps

__all__ = ["StudioBackdrop", "StudioMatting", "backdrop_shading", "border_plainness", "fit_studio_backdrop"]

_FIT_LONG_SIDE_PX = 320
_MIN_BORDER_INLIER_FRACTION = 0.35
_MAX_NOISE_LEVELS = 6.0  # std of the 3x3-averaged image around the backdrop model, 8-bit levels
_MIN_NOISE_LEVELS = 0.5
_BACKDROP_DISTANCE = 5.0  # in noise units; |residual| / sigma is chi(3)-distributed, P(> 5) ~ 1e-5
_SHADOW_MIN_SCALE = 0.25
# Brighter-than-model backdrop is accepted too: when a shadow covers the whole bottom border, the model learns it,
# and the unshadowed backdrop above comes out brighter than the model.
_SHADOW_MAX_SCALE = 1.25
# ...unless a segmenter's mask says subject there (`backdrop_prior`), past this margin over the model's brightness.
# Chosen on seeds 1-4 of the matting benchmark at 0.25 MP and seeds 1-2 at 1 MP (0, 0.02, 0.05; `auto`): chain 10.17 ->
# 9.51 SAD, motion blur 7.32 -> 6.87, glass 24.79 -> 24.36 at 1 MP; at 0.25 MP 43.98 -> 43.79 in all, hair +0.05.
_BRIGHTER_MARGIN = 0.02
_SHADOW_CHROMA_TOLERANCE = 0.03  # of the backdrop brightness: shadows are lit by a slightly different colour
_EDGE_MIN_LEVELS_PER_PX = 8.0
# ...at this long side (a 1 MP frame) and above; below it the threshold grows with the square root of the ratio.
# A penumbra twice as steep per px as at 1 MP had been walled off from the backdrop as an edge and kept. Chosen on
# seeds 1-4 of the matting benchmark at 0.25 MP (studio and gradient samples, `auto`): soft_shadow 1.17 -> 0.85 SAD,
# chain 3.03 -> 2.70; growing in proportion gained more there (0.54, 2.68) but cost the studio engine alone pale
# product flanks, taken for shadow once their outline no longer counted as an edge (product 0.70 -> 2.37).
_EDGE_REFERENCE_LONG_SIDE_PX = 1224
_MIN_SUBJECT_FRACTION = 0.002
_MIN_BACKDROP_FRACTION = 0.02
_MIN_HOLE_FRACTION = 0.0005
_MIN_SPECK_FRACTION = 2e-5
_MIN_PIECE_PX = 50  # uncovered pixels a border piece needs to be scored
_MIN_CONTRAST_LEVELS = 20.0  # |F - B| below this gives no usable alpha from the compositing equation
_SNAP = 0.02
_SNAP_NOISE_UNITS = 2.5  # alpha within this many noise-induced errors of 0 or 1 is snapped to it
_MAX_SNAP = 0.1  # ...but never wider than this: low-contrast outlines keep their soft edge
_RIDGE = 1e-5
# Porous subject (hair, fur): gaps a closing of ~long side / 200 fills, making up 2 % of a window of ~long side / 50.
# Chosen on seeds 1 and 2 of the matting benchmark (seed 0 is the reported one): hair 114 -> 100 SAD at 1 MP on
# studio and gradient backdrops, fur 8.6 -> 7.6, chain and motion blur within 0.4 worse, the rest unchanged.
_GAP_CLOSING_FRACTION = 1 / 200
_POROUS_WINDOW_FRACTION = 1 / 100
_POROUS_GAP_SHARE = 0.02
# Translucent interior (a glass body inside its rim): a faint region of the definite subject (nearer the backdrop
# than half the densest subject within ~long side / 10), at least 0.2 % of the image, whose ring of ~long side / 200
# lies in the subject (90 %) and is at least twice as far from the backdrop (median against median), which is as
# flat as the noise (median 5x5 std under 3 noise levels), and whose offset from the backdrop the ring's share
# (median cosine >= 0.93; glass bodies 0.96-0.99, a pale screen and letter on a real photo 0.89 and 0.81). Chosen
# on seeds 1 and 2 of the matting benchmark and on the contact sheet's photos.
_FAINT_SHARE = 0.5
_REACH_FRACTION = 1 / 10
_MIN_TRANSLUCENT_FRACTION = 0.002
_RING_FRACTION = 1 / 200
_RING_ENCLOSED = 0.9
_RING_DENSER = 2.0
_MAX_TEXTURE_NOISE_UNITS = 3.0
_MIN_RING_ALIGNMENT = 0.93
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class StudioBackdrop:
    """The backdrop model of step 1. rgb: float32 (H, W, 3) in [0, 255], the clean modelled backdrop; noise: std
    of the 3x3-averaged image around the model, in 8-bit levels."""

    rgb: np.ndarray
    noise: float


@dataclass(frozen=True)
class _Trimap:
    subject: np.ndarray  # bool (H, W)
    foreground: np.ndarray  # bool (H, W), definite subject
    backdrop: np.ndarray  # bool (H, W), definite backdrop
    band_px: int


class StudioMatting:
    """Matting engine for plain or gradient studio backdrops; see the module docstring for the method."""

    name = "studio"

    def estimate(
        self,
        image: np.ndarray,
        subject_prior: np.ndarray | None = None,
        backdrop: StudioBackdrop | None = None,
        backdrop_prior: np.ndarray | None = None,
    ) -> Matte:
        """image: uint8 (H, W, 3) RGB. Returns a Matte of the same size; raises SubjectNotFound.

        subject_prior: optional bool (H, W), pixels a segmenter is sure are subject. Those the backdrop model does
        not explain as plain backdrop are kept as subject even where they look like a shadow on it (a grey
        texture on a product touching its own cast shadow would otherwise be cut out with the shadow).
        backdrop: the model `fit_studio_backdrop` returned for this image, when the caller has it already.
        backdrop_prior: optional bool (H, W), pixels a segmenter takes for backdrop. An enclosed region the model
        explains as plain backdrop and the prior mostly calls backdrop opens as a hole however small it is; a pixel
        brighter than the model that the prior does not call backdrop stays subject."""
        check_image(image)
        timings: dict[str, float] = {}
        clock = Laps(timings)
        pixels = image.astype(np.float32)
        smooth = cv2.blur(pixels, (3, 3))
        backdrop = backdrop or _fit_backdrop(smooth)
        clock.lap("backdrop")
        trimap = _segment(smooth, backdrop, subject_prior, backdrop_prior)
        clock.lap("segment")
        scale = 2 if max(image.shape[:2]) > 800 else 1
        fg_colors = _spread_subject(image, trimap.foreground, trimap.band_px, scale)
        bg_colors = _spread_backdrop(image, trimap.backdrop, backdrop.rgb, 2 * trimap.band_px, scale)
        clock.lap("spread")
        alpha = _estimate_alpha(image, pixels, fg_colors, bg_colors, trimap, backdrop.noise)
        alpha = _thin_porous(alpha, pixels, bg_colors, trimap.subject, backdrop.noise)
        alpha = _thin_translucent(alpha, smooth, bg_colors, trimap, backdrop.noise)
        clock.lap("alpha")
        foreground = _recover_foreground(image, pixels, alpha, fg_colors, bg_colors)
        clock.lap("foreground")
        shading = _estimate_shading(bg_colors, backdrop)
        clock.lap("shading")
        timings["total"] = sum(timings.values())
        return Matte(alpha=alpha, foreground=foreground, shading=shading, engine=self.name, timings_ms=timings)


def fit_studio_backdrop(image: np.ndarray) -> StudioBackdrop:
    """Step 1 alone: the smooth backdrop model of image uint8 (H, W, 3) RGB, fitted to its border (~20-40 ms at
    1 MP). Raises SubjectNotFound when the border is not a plain or gradient backdrop this engine can model."""
    check_image(image)
    return _fit_backdrop(cv2.blur(image.astype(np.float32), (3, 3)))


def border_plainness(image: np.ndarray, backdrop: StudioBackdrop, uncovered: np.ndarray) -> float:
    """How plain the border is where no subject covers it (`uncovered`, bool (H, W)): the border ring is cut into
    16 pieces (four per side), each scored by the share of its uncovered pixels the backdrop model explains within
    noise, and the median piece's share is returned (0 when no piece has enough uncovered pixels).

    The fit itself tolerates a border that is two thirds subject, so brick, grass or a photo can pass it; texture is
    everywhere along such a border, while strands of hair reaching the edge are local, hence the median. Measured
    on the matting benchmark: 1.0 on every studio sweep and gradient, <= 0.82 on textured and photo backdrops."""
    tolerance = _BACKDROP_DISTANCE * backdrop.noise + 3.0
    shares = [
        float((np.linalg.norm(_smooth_piece(image, piece) - backdrop.rgb[piece], axis=2) < tolerance)[covered].mean())
        for piece in _border_pieces(*image.shape[:2])
        if np.count_nonzero(covered := uncovered[piece]) >= _MIN_PIECE_PX
    ]
    return float(np.median(shares)) if shares else 0.0


def _smooth_piece(image: np.ndarray, piece: tuple[slice, slice]) -> np.ndarray:
    """The 3x3-averaged image on one piece only (the ring is a few % of the image), with its true neighbours."""
    rows, columns = piece
    top, left = max(rows.start - 1, 0), max(columns.start - 1, 0)
    window = image[top : rows.stop + 1, left : columns.stop + 1].astype(np.float32)
    smooth = cv2.blur(window, (3, 3))
    return smooth[rows.start - top : rows.stop - top, columns.start - left : columns.stop - left]


def _border_pieces(height: int, width: int) -> list[tuple[slice, slice]]:
    """The border ring of `_border_mask` as 16 (rows, columns) slices, four along each side."""
    ring = _border_ring_px(height, width)
    pieces = []
    for index in range(4):
        columns = slice(index * width // 4, (index + 1) * width // 4)
        rows = slice(index * height // 4, (index + 1) * height // 4)
        pieces += [(slice(0, ring), columns), (slice(height - ring, height), columns)]
        pieces += [(rows, slice(0, ring)), (rows, slice(width - ring, width))]
    return pieces


def backdrop_shading(local_backdrop: np.ndarray, backdrop: StudioBackdrop) -> np.ndarray:
    """Step 6 alone: uint8 (H, W) cast-shadow layer, 255 = unshadowed, from local_backdrop float32 (H, W, 3) in
    [0, 255] (the backdrop colour estimated behind every pixel) over the clean model."""
    return _estimate_shading(local_backdrop, backdrop)


# ---------------------------------------------------------------- 1. backdrop model


def _fit_backdrop(smooth: np.ndarray) -> StudioBackdrop:
    """smooth: float32 (H, W, 3) in [0, 255], 3x3-averaged image."""
    height, width = smooth.shape[:2]
    factor = min(1.0, _FIT_LONG_SIDE_PX / max(height, width))
    thumb = cv2.resize(smooth, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else smooth
    basis = _basis_grid(*thumb.shape[:2])
    colors = thumb.reshape(-1, 3)
    border = _border_mask(*thumb.shape[:2]).ravel()
    coefficients, inliers, threshold = _fit_robust(basis[border], colors[border])
    if inliers.mean() < _MIN_BORDER_INLIER_FRACTION:
        raise SubjectNotFound(
            f"only {inliers.mean():.0%} of the image border fits a smooth backdrop: the backdrop is not plain enough "
            "for the studio matte; photograph the subject on a plain or gradient backdrop with space around it"
        )
    coefficients = _refit_on_backdrop(basis, colors, coefficients, threshold)
    model = (basis @ coefficients).reshape(*thumb.shape[:2], 3).astype(np.float32)
    model_full = cv2.resize(model, (width, height), interpolation=cv2.INTER_LINEAR) if factor < 1 else model
    noise = _border_noise(smooth, model_full)
    if noise > _MAX_NOISE_LEVELS:
        raise SubjectNotFound(
            f"the backdrop is not plain enough for the studio matte (border varies by {noise:.1f} levels around a "
            f"smooth surface, the limit is {_MAX_NOISE_LEVELS:g}): use a plain or gradient studio backdrop"
        )
    return StudioBackdrop(rgb=model_full, noise=max(noise, _MIN_NOISE_LEVELS))


def _basis_grid(height: int, width: int) -> np.ndarray:
    """float64 (H*W, 10): the full cubic in x, y over pixel centres mapped to [-1, 1]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (x + 0.5) / width * 2 - 1
    y = (y + 0.5) / height * 2 - 1
    x, y = x.ravel(), y.ravel()
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y, x**3, x * x * y, x * y * y, y**3], axis=1)


def _border_ring_px(height: int, width: int) -> int:
    return max(3, round(0.03 * min(height, width)))


def _border_mask(height: int, width: int) -> np.ndarray:
    ring = _border_ring_px(height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[:ring], mask[-ring:], mask[:, :ring], mask[:, -ring:] = True, True, True, True
    return mask


def _fit_robust(basis: np.ndarray, colors: np.ndarray, rounds: int = 6) -> tuple[np.ndarray, np.ndarray, float]:
    """(coefficients, inliers, inlier threshold in levels): least squares with iterative trimming, started from
    the median colour so that a border partly covered by the subject does not pull the first fit."""
    prediction = np.broadcast_to(np.median(colors, axis=0), colors.shape)
    inliers = np.ones(len(colors), dtype=bool)
    coefficients = np.zeros((basis.shape[1], 3))
    threshold = np.inf
    for _ in range(rounds):
        residual = np.linalg.norm(colors - prediction, axis=1)
        threshold = 3.0 * float(np.median(residual[inliers])) + 3.0
        inliers = residual < threshold
        if inliers.sum() < 4 * basis.shape[1]:
            break
        coefficients = _least_squares(basis[inliers], colors[inliers])
        prediction = basis @ coefficients
    return coefficients, inliers, threshold


def _least_squares(basis: np.ndarray, colors: np.ndarray) -> np.ndarray:
    # A whisper of ridge keeps the cubic terms tame when the subject hides a stretch of border.
    ridge = _RIDGE * len(basis) * np.diag([0.0] + [1.0] * (basis.shape[1] - 1))
    return np.linalg.solve(basis.T @ basis + ridge, basis.T @ colors)


def _refit_on_backdrop(basis: np.ndarray, colors: np.ndarray, coefficients: np.ndarray, threshold: float) -> np.ndarray:
    """Refit on every pixel the model explains as well as it explains the border; a few rounds, so that backdrop
    the border-only fit extrapolated poorly (far from the visible border) is taken in step by step."""
    for _ in range(3):
        backdrop_like = np.linalg.norm(colors - basis @ coefficients, axis=1) < threshold
        if backdrop_like.sum() < 4 * basis.shape[1]:
            break
        coefficients = _least_squares(basis[backdrop_like], colors[backdrop_like])
    return coefficients


def _border_noise(smooth: np.ndarray, model: np.ndarray) -> float:
    """Robust per-channel std of the border residual, combined over channels, in 8-bit levels."""
    border = _border_mask(*smooth.shape[:2])
    residual = (smooth - model)[border][::7]
    inliers = np.linalg.norm(residual, axis=1) < 3.0 * np.median(np.linalg.norm(residual, axis=1)) + 3.0
    kept = residual[inliers] if inliers.sum() > 100 else residual
    deviation = 1.4826 * np.median(np.abs(kept - np.median(kept, axis=0)), axis=0)
    return float(np.sqrt(np.mean(deviation**2)))


# ---------------------------------------------------------------- 2.-3. segmentation and trimap


def _segment(
    smooth: np.ndarray,
    backdrop: StudioBackdrop,
    subject_prior: np.ndarray | None,
    backdrop_prior: np.ndarray | None = None,
) -> _Trimap:
    height, width = smooth.shape[:2]
    area = height * width
    candidate, plain, brighter, blocked = _backdrop_candidates(smooth, backdrop)
    if subject_prior is not None:
        candidate &= ~(subject_prior & ~plain)
    if backdrop_prior is not None:
        # Brighter than the model is allowed for a shadow the model learnt along the border; where the segmenter
        # sees subject it is a pale subject instead (a white pendant or string on a light grey sweep).
        candidate &= ~(brighter & ~backdrop_prior)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate.view(np.uint8), connectivity=4)
    is_backdrop = np.zeros(count, dtype=bool)
    border_labels = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    is_backdrop[np.unique(border_labels)] = True
    plain_count = np.bincount(labels.ravel(), weights=plain.ravel(), minlength=count)
    sizes = stats[:, cv2.CC_STAT_AREA]
    is_backdrop |= (sizes >= _MIN_HOLE_FRACTION * area) & (plain_count >= 0.5 * sizes)
    if backdrop_prior is not None:  # step 2: small holes open where a segmenter sees backdrop too
        prior_count = np.bincount(labels.ravel(), weights=backdrop_prior.ravel(), minlength=count)
        is_backdrop |= (plain_count >= 0.5 * sizes) & (prior_count >= 0.5 * sizes)
    is_backdrop[0] = False  # label 0 is everything that is not a candidate
    subject = ~is_backdrop[labels]
    subject = _drop_specks(subject, max(16, round(_MIN_SPECK_FRACTION * area)))
    subject_fraction = subject.mean()
    if subject_fraction < _MIN_SUBJECT_FRACTION:
        raise SubjectNotFound(
            f"no subject found: only {subject_fraction:.2%} of the image differs from the backdrop; "
            "make sure the subject is in frame and contrasts with the backdrop"
        )
    if subject_fraction > 1 - _MIN_BACKDROP_FRACTION:
        raise SubjectNotFound("no backdrop found around the subject: leave some plain backdrop visible around it")
    band = max(2, round(max(height, width) / 320))
    # Shadow-coloured pixels held back only by an edge may be backdrop next to the outline: band, never core.
    foreground = cv2.erode((subject & ~blocked).view(np.uint8), _disk(band)).view(bool)
    backdrop_core = cv2.erode((~subject).view(np.uint8), _disk(max(1, band // 2))).view(bool)
    return _Trimap(subject=subject, foreground=foreground, backdrop=backdrop_core, band_px=band)


def _backdrop_candidates(
    smooth: np.ndarray, backdrop: StudioBackdrop
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(candidate, plain, brighter, blocked) bool (H, W): pixels that may be backdrop, those within noise of the model,
    those not within noise and brighter than it, and shadow-coloured ones that are not candidates only because they
    sit on an edge."""
    model, sigma = backdrop.rgb, backdrop.noise
    difference = smooth - model
    plain = np.einsum("ijk,ijk->ij", difference, difference) < (_BACKDROP_DISTANCE * sigma) ** 2
    model_power = np.einsum("ijk,ijk->ij", model, model) + 1e-3
    scale = np.einsum("ijk,ijk->ij", smooth, model) / model_power
    chroma = smooth - scale[:, :, None] * model
    chroma_error = np.sqrt(np.einsum("ijk,ijk->ij", chroma, chroma))
    tolerance = _BACKDROP_DISTANCE * sigma + _SHADOW_CHROMA_TOLERANCE * scale * np.sqrt(model_power)
    shadow_like = (scale > _SHADOW_MIN_SCALE) & (scale < _SHADOW_MAX_SCALE) & (chroma_error < tolerance)
    blocked = shadow_like & _edges(smooth, sigma) & ~plain
    brighter = ~plain & (scale > 1.0 + _BRIGHTER_MARGIN)
    return plain | (shadow_like & ~blocked), plain, brighter, blocked


def _edges(smooth: np.ndarray, sigma: float) -> np.ndarray:
    """bool (H, W): luminance steeper than a soft shadow can be, dilated by one pixel to close gaps."""
    luminance = smooth @ _LUMA
    gx = cv2.Sobel(luminance, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(luminance, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    # A soft shadow's slope in levels per px grows as the image shrinks; an anti-aliased outline stays one px.
    scale = np.sqrt(max(1.0, _EDGE_REFERENCE_LONG_SIDE_PX / max(smooth.shape[:2])))
    threshold = max(_EDGE_MIN_LEVELS_PER_PX * scale, 6.0 * sigma)
    steep = (gx * gx + gy * gy) > threshold**2
    return cv2.dilate(steep.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)


def _drop_specks(subject: np.ndarray, min_area_px: int) -> np.ndarray:
    _, labels, stats, _ = cv2.connectedComponentsWithStats(subject.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area_px
    keep[0] = False
    return keep[labels]


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


# ---------------------------------------------------------------- 4.-6. alpha, colours, shading


def _spread_subject(image: np.ndarray, known: np.ndarray, radius: int, scale: int) -> np.ndarray:
    """Colours of definite-subject pixels spread into the band by a normalised blur.

    image: uint8 (H, W, 3); known: bool (H, W). Within `radius` px of known pixels the spread is local; farther out
    (where a cast shadow beside the outline widened the band) a second blur with four times the reach fills in, so
    that every band pixel beside an opaque core gets a subject colour. NaN where no known pixel is within that
    reach (a string thinner than the band). Works at 1/scale resolution. Returns float32 (H, W, 3) in [0, 255] or NaN.
    """
    weight, weighted = _downsample_known(image, known, scale)
    near_weight, near = _normalised_blur(weight, weighted, radius, scale)
    far_weight, far = _normalised_blur(weight, weighted, 4 * radius, scale)
    far[far_weight <= 1e-3] = np.nan
    spread = np.where((near_weight > 1e-3)[:, :, None], near, far)
    return _upsample(spread, known.shape, scale)


def _spread_backdrop(image: np.ndarray, known: np.ndarray, prior: np.ndarray, radius: int, scale: int) -> np.ndarray:
    """Colours of definite-backdrop pixels extended to their surroundings by a local linear fit.

    A plain normalised blur (a local mean) is biased wherever the backdrop has a gradient and the known pixels lie
    on one side only: next to a subject standing in its cast shadow the known backdrop is all farther from the
    subject, hence lighter, so the band got a backdrop several levels too light; the compositing equation turned
    that into a faint alpha with a light colour (a grey line a few px outside the outline on a dark scene) and the
    shading layer into too weak a contact shadow. So the brightness gradient is fitted too (normalised convolution
    of first order, with a small ridge so that across a thin strip of known backdrop it falls back to the mean),
    and the local mean colour is scaled along it, as a shadow or vignette scales the backdrop, to the pixel. Where
    the known pixels are centred on the pixel the fit is the mean, so it is solved only where they are not (near
    the subject and the image border).

    image: uint8 (H, W, 3); known: bool (H, W); prior: float32 (H, W, 3) in [0, 255], used where nothing is known
    nearby. Works at 1/scale resolution. Returns float32 (H, W, 3) in [0, 255].
    """
    weight, weighted = _downsample_known(image, known, scale)
    height, width = weight.shape
    # Centred coordinates keep the second moments well within float32 precision.
    x = np.broadcast_to(np.arange(width, dtype=np.float32)[None, :] - width / 2, (height, width))
    y = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None] - height / 2, (height, width))
    wx, wy, wl = weight * x, weight * y, weighted @ _LUMA
    box = (2 * max(1, radius // scale) + 1,) * 2
    geometry, luminance, colour = (
        _blur_twice(cv2.merge(channels), box)
        for channels in ((weight, wx, wy, wx * x), (wx * y, wy * y, wl * x, wl * y), (*cv2.split(weighted), wl))
    )
    epsilon = 1e-3  # the prior's weight: it only matters where no known pixel is within reach
    low_prior = prior if scale == 1 else cv2.resize(prior, (width, height), interpolation=cv2.INTER_AREA)
    total = geometry[:, :, 0]
    spread = (colour[:, :, :3] + epsilon * low_prior) / (total + epsilon)[:, :, None]
    offset = np.abs(geometry[:, :, 1] - x * total) + np.abs(geometry[:, :, 2] - y * total)
    lopsided = (offset > 0.05 * total) & (total > 1e-4)
    moments = np.concatenate([geometry[lopsided], luminance[lopsided], colour[lopsided]], axis=1)
    fitted = np.clip(_linear_fit(moments, x[lopsided], y[lopsided]), 0.0, 255.0)
    weight = moments[:, :1]
    spread[lopsided] = (weight * fitted + epsilon * low_prior[lopsided]) / (weight + epsilon)
    return _upsample(spread, known.shape, scale)


def _blur_twice(values: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """Two box passes: a tent kernel, O(1) per pixel."""
    return cv2.blur(cv2.blur(values, box), box)


def _linear_fit(moments: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float32 (N, 3): the mean colour scaled along the fitted luminance gradient from the centroid to the pixel.

    moments: float32 (N, 12) blurred w, wx, wy, wxx, wxy, wyy, wLx, wLy, wR, wG, wB, wL (w: known weight, L:
    luminance); x, y: (N,) the pixels' coordinates in the same frame.
    """
    inverse = 1.0 / moments[:, 0]
    cx, cy = moments[:, 1] * inverse, moments[:, 2] * inverse
    ridge = 0.5  # (px at the working resolution)^2: across a known strip this thin, no gradient is fitted
    vxx = moments[:, 3] * inverse - cx * cx + ridge
    vxy = moments[:, 4] * inverse - cx * cy
    vyy = moments[:, 5] * inverse - cy * cy + ridge
    mean_luminance = moments[:, 11] * inverse
    bx = moments[:, 6] * inverse - cx * mean_luminance
    by = moments[:, 7] * inverse - cy * mean_luminance
    determinant = np.maximum(vxx * vyy - vxy * vxy, ridge * ridge)
    dx, dy = x - cx, y - cy
    change = (bx * (vyy * dx - vxy * dy) + by * (vxx * dy - vxy * dx)) / determinant
    ratio = np.maximum(1.0 + change / np.maximum(mean_luminance, 1.0), 0.0)
    return moments[:, 8:11] * (inverse * ratio)[:, None]


def _downsample_known(image: np.ndarray, known: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight float32 (h, w), weighted colours float32 (h, w, 3)): the known pixels' indicator and colours (0
    elsewhere), area-averaged to 1/scale resolution."""
    weight = known.astype(np.float32)
    weighted = cv2.bitwise_and(image, image, mask=known.view(np.uint8)).astype(np.float32)
    if scale > 1:
        size = (known.shape[1] // scale, known.shape[0] // scale)
        weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
        weighted = cv2.resize(weighted, size, interpolation=cv2.INTER_AREA)
    return weight, weighted


def _normalised_blur(
    weight: np.ndarray, weighted: np.ndarray, radius: int, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """(blurred weight, weighted mean): two box passes, a tent kernel, O(1) per pixel; the mean is meaningless where
    the blurred weight is ~0."""
    box = (2 * max(1, radius // scale) + 1,) * 2
    for _ in range(2):
        weight = cv2.blur(weight, box)
        weighted = cv2.blur(weighted, box)
    return weight, weighted / np.maximum(weight, 1e-3)[:, :, None]


def _upsample(values: np.ndarray, shape: tuple[int, int], scale: int) -> np.ndarray:
    if scale == 1:
        return values
    return cv2.resize(values, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _estimate_alpha(
    image: np.ndarray,
    pixels: np.ndarray,
    fg_colors: np.ndarray,
    bg_colors: np.ndarray,
    trimap: _Trimap,
    noise: float,
) -> np.ndarray:
    """uint8 (H, W): 255 on definite subject, 0 on definite backdrop, the compositing equation in the band."""
    alpha = trimap.foreground.astype(np.float32)
    band = ~trimap.foreground & ~trimap.backdrop
    observed, fg, bg = pixels[band], fg_colors[band], bg_colors[band]
    contrast = fg - bg
    contrast_power = np.einsum("ij,ij->i", contrast, contrast)
    reliable = np.isfinite(contrast_power) & (contrast_power > max(_MIN_CONTRAST_LEVELS, 8 * noise) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.einsum("ij,ij->i", observed - bg, contrast) / contrast_power
    # Pixel noise projected on F - B is an alpha error of noise / |F - B| (3 * noise: the level is measured on the
    # 3x3-averaged image). Estimates that close to either end are that end: without this, the noise of a shadowed
    # backdrop beside the outline (darker, so nearer F) came out as specks of faint alpha outside the subject.
    with np.errstate(invalid="ignore", divide="ignore"):
        snap = np.clip(_SNAP_NOISE_UNITS * 3.0 * noise / np.sqrt(contrast_power), _SNAP, _MAX_SNAP)
    estimate = np.where(estimate < snap, 0.0, np.where(estimate > 1.0 - snap, 1.0, estimate))
    alpha[band] = np.where(reliable, estimate, 0.5)
    if not reliable.all():
        coarse = _guided(image, np.where(trimap.subject, 1.0, 0.0).astype(np.float32), 2 * trimap.band_px, 1e-2)
        alpha[band] = np.where(reliable, alpha[band], coarse[band])
    alpha[alpha < _SNAP] = 0.0
    alpha[alpha > 1.0 - _SNAP] = 1.0
    return np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)


def _thin_porous(
    alpha: np.ndarray, pixels: np.ndarray, bg_colors: np.ndarray, subject: np.ndarray, noise: float
) -> np.ndarray:
    """uint8 (H, W): alpha lowered where the subject is porous (hair, fur: backdrop seen between strands) to the
    pixel's distance from the local backdrop over the largest such distance among porous pixels nearby."""
    long_side = max(subject.shape)
    closing = _disk(max(2, round(long_side * _GAP_CLOSING_FRACTION)))
    gaps = cv2.morphologyEx(subject.view(np.uint8), cv2.MORPH_CLOSE, closing).view(bool) & ~subject
    window = 2 * max(4, round(long_side * _POROUS_WINDOW_FRACTION)) + 1
    porous = subject & (cv2.blur(gaps.astype(np.float32), (window, window)) > _POROUS_GAP_SHARE)
    if not porous.any():
        return alpha
    offset = pixels[porous] - bg_colors[porous]
    distance = np.sqrt(np.einsum("ij,ij->i", offset, offset))
    spread = np.zeros(subject.shape, np.float32)
    spread[porous] = distance
    reach = cv2.dilate(spread, _disk(window // 2))[porous]  # > 0 wherever distance is
    with np.errstate(invalid="ignore", divide="ignore"):
        unmixed = np.where(distance > _BACKDROP_DISTANCE * noise, np.clip(distance / reach, 0.0, 1.0), 0.0)
    unmixed[unmixed > 1.0 - _MAX_SNAP] = 1.0  # subject texture, not a mix: a solid part beside a notch stays opaque
    thinned = alpha.copy()
    thinned[porous] = np.minimum(alpha[porous], np.rint(unmixed * 255.0).astype(np.uint8))
    return thinned


def _thin_translucent(
    alpha: np.ndarray, smooth: np.ndarray, bg_colors: np.ndarray, trimap: _Trimap, noise: float
) -> np.ndarray:
    """uint8 (H, W): alpha lowered in faint, flat regions enclosed by a denser part of the subject (a glass body
    inside its rim) to the pixel's distance from the local backdrop over the ring's median distance."""
    offset = smooth - bg_colors
    distance = np.sqrt(np.einsum("ijk,ijk->ij", offset, offset))
    long_side = max(alpha.shape)
    reach = 2 * round(long_side * _REACH_FRACTION) + 1
    # a square window: scipy's running maximum costs the same at any size (OpenCV's dilation by it: 3x as long at 1 MP)
    densest = ndimage.maximum_filter(np.where(trimap.subject, distance, 0.0), size=reach, mode="nearest")
    faint = trimap.foreground & (distance < _FAINT_SHARE * densest)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(faint.view(np.uint8), connectivity=8)
    ring_kernel = _disk(max(2, round(long_side * _RING_FRACTION)))
    luminance = smooth @ _LUMA
    thinned = alpha.copy()
    for label in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= _MIN_TRANSLUCENT_FRACTION * alpha.size) + 1:
        x, y, width, height = stats[label, :4]
        pad = ring_kernel.shape[0]
        crop = (slice(max(0, y - pad), y + height + pad), slice(max(0, x - pad), x + width + pad))
        region = labels[crop] == label
        ring = cv2.dilate(region.view(np.uint8), ring_kernel).view(bool) & ~region
        enclosed = trimap.subject[crop][ring]
        ring_distance = np.median(distance[crop][ring][enclosed]) if enclosed.any() else 0.0
        if (
            enclosed.mean() < _RING_ENCLOSED
            or ring_distance < _RING_DENSER * np.median(distance[crop][region])
            or not _is_flat(luminance[crop], region, noise)
            or not _is_diluted_ring(offset[crop][region], offset[crop][ring][enclosed])
        ):
            continue
        unmixed = np.rint(np.clip(distance[crop][region] / ring_distance, 0.0, 1.0) * 255.0).astype(np.uint8)
        patch = thinned[crop]
        patch[region] = np.minimum(patch[region], unmixed)
    return thinned


def _is_diluted_ring(region_offsets: np.ndarray, ring_offsets: np.ndarray) -> bool:
    """Whether the region's colour lies between the backdrop and its ring's, as a thin layer of the rim's material
    does (I - B = a (F - B) for both): the median ring pixel's offset from the backdrop points the region's way. A
    pale print inside a darker subject points elsewhere (a laptop's pale screen in its bezel: 0.89)."""
    direction = region_offsets.mean(axis=0)
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    lengths = np.maximum(np.linalg.norm(ring_offsets, axis=1), 1e-6)
    return bool(np.median(ring_offsets @ direction / lengths) >= _MIN_RING_ALIGNMENT)


def _is_flat(luminance: np.ndarray, region: np.ndarray, noise: float) -> bool:
    """Whether the region is about as flat as the backdrop's noise: a glass body mixes two smooth colours, while a
    pale opaque part (a white strap on a suit) has folds and print."""
    mean = cv2.blur(luminance, (5, 5))
    deviation = np.sqrt(np.maximum(cv2.blur(luminance * luminance, (5, 5)) - mean * mean, 0.0))
    return bool(np.median(deviation[region]) < _MAX_TEXTURE_NOISE_UNITS * noise)


def _guided(image: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Guided filter of float32 (H, W) `source`, guided by uint8 image scaled to [0, 1]; eps in that scale."""
    guide = image.astype(np.float32) / 255.0
    return cv2.ximgproc.guidedFilter(guide, source, radius, eps)


def _recover_foreground(
    image: np.ndarray, pixels: np.ndarray, alpha: np.ndarray, fg_colors: np.ndarray, bg_colors: np.ndarray
) -> np.ndarray:
    """uint8 (H, W, 3): F = B + (I - B) / a where 0 < alpha < 255, the input elsewhere."""
    foreground = image.copy()
    partial = (alpha > 0) & (alpha < 255)
    a = alpha[partial].astype(np.float32)[:, None] / 255.0
    bg = bg_colors[partial]
    unmixed = bg + (pixels[partial] - bg) / a
    spread = fg_colors[partial]
    spread = np.where(np.isfinite(spread), spread, unmixed)
    trust = np.clip(a / 0.3, 0.0, 1.0)  # division by a small alpha amplifies noise: lean on the spread colour
    foreground[partial] = np.rint(np.clip(trust * unmixed + (1 - trust) * spread, 0, 255)).astype(np.uint8)
    return foreground


def _estimate_shading(bg_colors: np.ndarray, backdrop: StudioBackdrop) -> np.ndarray:
    """uint8 (H, W): local backdrop luminance over the clean model, 255 where no darkening beyond noise."""
    model_luminance = np.maximum(backdrop.rgb @ _LUMA, 1.0)
    ratio = (bg_colors @ _LUMA) / model_luminance
    dead_zone = 0.02 + 3.0 * backdrop.noise / model_luminance  # noise plus a little model misfit
    darkening = np.maximum(1.0 - ratio - dead_zone, 0.0)
    return np.rint(np.clip(1.0 - darkening, 0.0, 1.0) * 255.0).astype(np.uint8)
