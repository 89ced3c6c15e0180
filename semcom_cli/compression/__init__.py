"""Fitting a checkpoint to a device's memory: int8 quantisation, vocabulary pruning and layer removal
of the receiver's LLM (int8 storage of the transmitter's parts), chosen by measurement.

``recipe`` (what a candidate does) → ``calibrate`` (what to keep in float, which layers to drop) →
``llm`` (build, save and load the compressed LLM) → ``search`` (measure every candidate in its own
process, keep the fastest that fits the budget and the accuracy floor, write the checkpoint).
"""
