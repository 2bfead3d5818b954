"""Quality control of predicted sessions, for a researcher who has no reference to score against.

* :mod:`dawm.qc.session`: the files of one predicted session (``dawm predict`` outputs and the
  preprocess derivative they came from), found through the BIDS name helpers;
* :mod:`dawm.qc.flags`: the warnings of a session (those preprocessing recorded, and low-quality
  flags derived from its metrics);
* :mod:`dawm.qc.page`: the self-contained HTML page of one session
  (``OUT/sub-X/ses-Y/sub-X_ses-Y_desc-qc_report.html``) and :func:`~dawm.qc.page.write_qc_pages`;
* :mod:`dawm.qc.cohort`: the cohort page of ``dawm run ... group`` (a table of sessions linking each page).
"""
