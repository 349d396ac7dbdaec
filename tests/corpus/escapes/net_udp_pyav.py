# ruff: noqa
# class: network
# tries: UDP datagrams sent by FFmpeg's udp:// protocol (an MPEG-TS stream written through PyAV).
from manim import *
import av


class Escape(Scene):
    def construct(self):
        with av.open("udp://127.0.0.1:__UDP_PORT__", "w", format="mpegts") as container:
            stream = container.add_stream("mpeg4", rate=15)
            stream.width, stream.height = 64, 64
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            for _ in range(5):
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        self.play(FadeIn(Dot()), run_time=0.2)
