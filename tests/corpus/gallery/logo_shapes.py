"""A filled-shape badge on a light background (covers ManimCELogo)."""

# ruff: noqa: F403, F405
from manim import *


class BadgeOnPaper(Scene):
    def construct(self):
        self.camera.background_color = "#f3eee4"
        ink = "#2b2b33"
        teal = "#3f9e8f"
        plum = "#7d4e8c"
        amber = "#e3a33b"
        letter = MathTex(r"\mathbb{Z}", fill_color=ink).scale(5)
        letter.shift(1.6 * LEFT + 1.1 * UP)
        hexagon = RegularPolygon(n=6, color=teal, fill_opacity=1).shift(0.7 * DOWN + 0.5 * LEFT)
        block = Square(side_length=1.4, color=amber, fill_opacity=1).shift(0.5 * UP + 0.4 * RIGHT)
        disc = Circle(radius=0.8, color=plum, fill_opacity=1).shift(1.1 * RIGHT + 0.6 * DOWN)
        wedge = Triangle(color=ink, fill_opacity=0.7).scale(0.5).shift(1.9 * RIGHT + 1.4 * UP)
        # Later members are drawn on top of earlier ones.
        badge = VGroup(hexagon, block, disc, wedge, letter)
        badge.move_to(ORIGIN)
        slice_of_pie = Sector(radius=0.9, angle=2 * PI / 3, color=teal, fill_opacity=0.9)
        slice_of_pie.move_to(5 * LEFT + 2 * DOWN)
        arc_band = AnnularSector(inner_radius=0.4, outer_radius=0.8, angle=3 * PI / 2, color=plum)
        arc_band.move_to(5 * RIGHT + 2 * DOWN)
        caption = Text("a paper badge", font="DejaVu Serif", gradient=(teal, plum), font_size=40)
        caption.to_edge(DOWN)
        motto = Text("shapes and letters", font="DejaVu Sans Mono", color=ink, font_size=28)
        motto.set_color_by_t2c({"letters": amber})
        motto.to_edge(UP)
        self.add(badge, slice_of_pie, arc_band, caption, motto)
