"""cirlab: composed image retrieval with pluggable, measurable negative sampling.

Importing the package is cheap: heavy dependencies (torch, open_clip, faiss) are imported by the
submodules that need them, never here.
"""

__version__ = "0.1.0"
