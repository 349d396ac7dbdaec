"""A point circling a wheel draws its sine wave through redrawn lines (covers SineCurveUnitCircle)."""

# ruff: noqa: F403, F405
from manim import *


class CircleToWave(Scene):
    def construct(self):
        self.centre = np.array([-4.5, 0, 0])
        self.wave_start = np.array([-3, 0, 0])
        self.phase = 0.0
        self.draw_axes()
        wheel = self.draw_wheel()
        self.trace_wave(wheel)

    def draw_axes(self):
        self.add(Line([-6.5, 0, 0], [6.5, 0, 0]), Line([-4.5, -1.8, 0], [-4.5, 1.8, 0]))
        for step, tex in enumerate([r"\frac{\pi}{2}", r"\pi", r"\frac{3\pi}{2}", r"2\pi"]):
            self.add(MathTex(tex, font_size=30).next_to([-1.5 + 1.5 * step, 0, 0], DOWN))

    def draw_wheel(self):
        wheel = Circle(radius=1, color=BLUE).move_to(self.centre)
        self.add(wheel)
        return wheel

    def trace_wave(self, wheel):
        turns_per_second = 0.4
        spinner = Dot(radius=0.07, color=YELLOW).move_to(wheel.point_from_proportion(0))

        def spin(mob, dt):
            self.phase += dt * turns_per_second
            mob.move_to(wheel.point_from_proportion(self.phase % 1))

        def wave_x():
            return self.wave_start[0] + 6 * self.phase

        def spoke():
            return Line(self.centre, spinner.get_center(), color=BLUE_B)

        def connector():
            return Line(spinner.get_center(), [wave_x(), spinner.get_y(), 0], color=YELLOW_A, stroke_width=2)

        pieces = VGroup(Line(self.wave_start, self.wave_start))

        def grown_wave():
            pieces.add(Line(pieces[-1].get_end(), [wave_x(), spinner.get_y(), 0], color=YELLOW_D))
            return pieces

        spinner.add_updater(spin)
        self.add(spinner, always_redraw(spoke), always_redraw(connector), always_redraw(grown_wave))
        self.wait(2.5)
        spinner.remove_updater(spin)
        self.wait(0.3)
