"""The video pipeline: topic → outline → scene plans → Manim code → renders → combined, stored video."""
