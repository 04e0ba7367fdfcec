"""The paper's experiments beside the ``inn`` library, using only its public API: the zoo of
small pretrained networks and their checkpoints, data loaders, discrete baselines, the
Torch-Pruning peer, super-resolution and the demo. Their commands join ``inn`` through the
``inn.commands`` entry point (``inn demo``, ``inn experiment NAME``, ``inn upscale``)."""
