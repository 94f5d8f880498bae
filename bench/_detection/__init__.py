"""Helpers of ``bench/detection_eval.py``: a labelled span stream, its replay and its scoring.

- :mod:`_detection.world`: the models, tools, agents and workflows the simulated apps use;
- :mod:`_detection.truth`: fault types and the ground truth the generator records;
- :mod:`_detection.generate`: clean and faulty runs over several topologies, interleaved on a
  virtual clock, with faults injected at known spans;
- :mod:`_detection.detectors`: the detector set under test (one function, ``build_detectors``);
- :mod:`_detection.replay`: the stream through the real collector pipeline, timed;
- :mod:`_detection.score`: precision, recall, F1, clean runs flagged, delays.
"""
