"""The HTTP API: validates requests, stores files and task records, and hands task ids to the workers.

It never touches pixels; `veil.worker` runs the engine.
"""
