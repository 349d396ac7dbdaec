"""Union, intersection, difference and exclusion of two shapes (covers BooleanOperations)."""

# ruff: noqa: F403, F405
from manim import *


class SetOperations(Scene):
    def construct(self):
        disc = Ellipse(width=2.6, height=2, color=BLUE, fill_opacity=0.5, stroke_width=6).shift(0.5 * LEFT)
        tile = Square(side_length=2, color=RED, fill_opacity=0.5).shift(0.5 * RIGHT)
        pair = VGroup(disc, tile).shift(1.2 * UP)
        title = Text("Set operations", font_size=36).to_edge(UP)
        self.play(FadeIn(pair), Write(title), run_time=0.6)
        results = [
            (Union(disc, tile, color=GREEN, fill_opacity=0.7), "Union"),
            (Intersection(disc, tile, color=YELLOW, fill_opacity=0.7), "Intersection"),
            (Difference(disc, tile, color=PURPLE, fill_opacity=0.7), "Difference"),
            (Exclusion(disc, tile, color=TEAL, fill_opacity=0.7), "Exclusion"),
        ]
        spots = [np.array([x, -1.6, 0]) for x in (-4.5, -1.5, 1.5, 4.5)]
        self.add(*[shape for shape, _ in results])
        self.play(
            *[
                shape.animate.scale(0.6).move_to(spot)
                for (shape, _), spot in zip(results, spots, strict=True)
            ],
            run_time=0.8,
        )
        labels = [
            Text(name, font_size=24).next_to(spot, DOWN, buff=1)
            for (_, name), spot in zip(results, spots, strict=True)
        ]
        self.play(
            LaggedStart(*[FadeIn(label, shift=0.3 * UP) for label in labels], lag_ratio=0.2), run_time=0.6
        )
