"""Matting quality: a generated set with exact ground truth (`dataset`), the alphamatting.com metrics plus a
boundary band and colour spill (`metrics`), reference mattes (`references`), the benchmark and its markdown report
(`run`, behind `replate bench matting`) and a contact sheet of real photos (`contact_sheet`).

The modules are imported by name (`from replate.quality.run import run_benchmark`); importing the package loads
none of them, so the server never pays for scikit-image or pymatting.
"""

__all__: list[str] = []
