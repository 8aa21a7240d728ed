"""coldsign: air-gapped Bitcoin signing for institutional custody."""

__version__ = "0.1.0"
