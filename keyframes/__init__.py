"""Key-frame translation: SD1.5 sampling under Rerender's hierarchical cross-frame constraints.

``constraints.py`` holds the math as plain tensor functions; ``references.py`` moves rendered key
frames onto the current one by optical flow; ``attention.py`` and ``sampler.py`` are the small
hooks; ``renderer.py`` runs the key frames one after another through the host.
"""
