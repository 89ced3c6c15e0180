"""File formats between stages and on disk: the semantic file with its typed header (:mod:`.semantic`), the patch
layout an image packet's header implies (:mod:`.patches`), and the one checkpoint protocol (:mod:`.checkpoint`).
Writing files atomically is :mod:`semcom_cli.core.files`. Import the module you need: the patch layout stays light
(no pydantic), which the GPU training script relies on."""
