"""The web app's logic as plain typed functions; ``app.py`` only wires components to them.

A browser session, module by module: :mod:`.upload` decodes the uploaded file; :mod:`.actions` runs the model
(:func:`~.actions.analyse_case`), redoes the CAM or the comparison from the cached forward pass
(:func:`~.actions.update_case`, :func:`~.actions.apply_truth`) and returns a :class:`~.state.CaseView` that
:mod:`.view` built (summary, ranked scores, target choices, panels to redraw); :mod:`.models` owns the loaded models;
:mod:`.boxes_text` turns drawn and typed boxes into text and back; :mod:`.review` keeps the reviewed cases and writes
the CSV and the report; :mod:`.resources` reads the examples and the environment. The dataclasses shared by all are
in :mod:`.state`.

Side by side and the audit page: :mod:`.side` draws every CAM method from the cached forward pass and runs a second
model beside the case; :mod:`.datasets` lists the data sets an audit may use (the examples and
``CXRDEMO_AUDIT_DATASETS``, by name only); :mod:`.audit_runs` keeps the line of audits (one at a time, Stop) and runs
one into its own folder with its zip; :mod:`.audit_view` turns its result into the page's tables and gallery. The
``ui_*`` modules (:mod:`.ui_common`, :mod:`.ui_side`, :mod:`.ui_audit`) lay out and wire those parts for ``app.py``;
they and :mod:`.housekeeping` (which patches Gradio's cache clean-up) are the only modules here that import Gradio.

Every function raises :class:`~cxrdemo.errors.CxrDemoError` (one-line message) for anything a user can get wrong.
Research demo, not a diagnostic device.
"""
