"""The contract between the pipeline's stages, below all of them.

``spec``: what a policy observes and commands (``PolicySpec``); ``actor``: the deployed
network (torch); ``checkpoint``: the files training writes and export, evaluation and the
HIL bridge read; ``files``: ``atomic_write``. Import the submodule you need: importing
this package loads neither torch nor the simulator.
"""
