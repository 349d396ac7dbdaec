# ruff: noqa
# class: c-write
# tries: write a video file outside the work dir with PyAV (libavformat opens the file in C).
from manim import *
import av


class Escape(Scene):
    def construct(self):
        with av.open("__MARKER_DIR__/cwrite_pyav.mp4", "w") as container:
            stream = container.add_stream("mpeg4", rate=15)
            stream.width, stream.height = 64, 64
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        self.play(FadeIn(Dot()), run_time=0.2)
