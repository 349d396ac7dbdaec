"""A zoomed camera over an array image, popped out, reshaped and moved (covers MovingZoomedSceneAround)."""

# ruff: noqa: F403, F405
from manim import *


class MagnifierTour(ZoomedScene):
    def __init__(self, **kwargs):
        ZoomedScene.__init__(
            self,
            zoom_factor=0.25,
            zoomed_display_height=1.5,
            zoomed_display_width=4,
            image_frame_stroke_width=10,
            zoomed_camera_config={"default_frame_stroke_width": 2},
            **kwargs,
        )

    def construct(self):
        pixels = np.uint8([[40, 200, 90], [250, 10, 160], [120, 70, 220]])
        picture = ImageMobject(pixels)
        picture.height = 6
        target = Dot(color=YELLOW).shift(1.5 * LEFT + UP)
        self.add(picture, target)
        lens = self.zoomed_camera.frame
        display = self.zoomed_display
        border = display.display_frame
        lens.move_to(target)
        lens.set_color(YELLOW)
        border.set_color(GREEN)
        display.shift(0.5 * DOWN)
        halo = BackgroundRectangle(display, fill_opacity=0, buff=SMALL_BUFF)
        self.add_foreground_mobject(halo)
        track_display = UpdateFromFunc(halo, lambda rect: rect.replace(display))
        caption = Text("lens", color=YELLOW).scale(0.8).next_to(lens, DOWN)
        self.play(Create(lens), FadeIn(caption, shift=UP), run_time=0.4)
        self.activate_zooming()
        self.play(self.get_zoomed_display_pop_out_animation(), track_display, run_time=0.5)
        squash = [0.6, 1.5, 0]
        self.play(lens.animate.scale(squash), display.animate.scale(squash), FadeOut(caption), run_time=0.4)
        self.play(ScaleInPlace(display, 1.3), run_time=0.3)
        self.play(lens.animate.shift(2 * RIGHT), run_time=0.4)
        self.play(
            self.get_zoomed_display_pop_out_animation(),
            track_display,
            rate_func=lambda t: smooth(1 - t),
            run_time=0.5,
        )
        self.play(Uncreate(border), FadeOut(lens), run_time=0.4)
