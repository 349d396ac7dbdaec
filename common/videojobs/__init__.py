"""videojobs: topic in, narrated Manim explainer video out; shared contract, settings and CLI."""
