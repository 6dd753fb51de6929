"""The web app's logic as plain typed functions (no Gradio import); ``app.py`` only wires components to them.

A browser session, module by module: :mod:`.upload` decodes the uploaded file; :mod:`.actions` runs the model
(:func:`~.actions.analyse_case`), redoes the CAM or the comparison from the cached forward pass
(:func:`~.actions.update_case`, :func:`~.actions.apply_truth`) and returns a :class:`~.state.CaseView` that
:mod:`.view` built (summary, ranked scores, target choices, panels to redraw); :mod:`.models` owns the loaded models;
:mod:`.boxes_text` turns drawn and typed boxes into text and back; :mod:`.review` keeps the reviewed cases and writes
the CSV and the report; :mod:`.resources` reads the examples and the environment. The dataclasses shared by all are
in :mod:`.state`.

Every function raises :class:`~cxrdemo.errors.CxrDemoError` (one-line message) for anything a user can get wrong.
Research demo, not a diagnostic device.
"""
