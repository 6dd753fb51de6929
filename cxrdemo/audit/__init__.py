"""cxrdemo.audit: judge a model's explanations (CAMs) over a data set, every figure with a bootstrap CI.

Modules (importing this package, :mod:`.maps`, :mod:`.stats` or :mod:`.baseline` does not import torch):

- :mod:`.maps`: localisation of one heatmap against one box or one ground-truth mask: pointing game (hit rate),
  energy in the box / region, IoU of the thresholded map (Otsu, 127/255, 180/255) with it (cheXlocalize's rules).
- :mod:`.regions`: the ground truth as regions (boxes or masks with readers), grouped per class by the reader rule
  (``per_reader`` / ``union``), and how well readers agree; :mod:`.interreader`: that agreement as the third
  reference level (a second radiologist) and each method's verdict against it.
- :mod:`.stats`: :class:`~.stats.Estimate` and the 95 % percentile bootstrap over images (mean, any statistic,
  ROC AUC, paired AUC difference of two models on the same images).
- :mod:`.baseline`: read and write per-image probability CSVs (reproduce-chexnet's ``preds.csv`` format) and match
  their images with a data set.
- :mod:`.faithfulness` (torch): ROAD (Rong et al. 2022), its imputation solved in torch (:mod:`.road_impute`); pytorch-grad-cam's ``ROADCombined`` kept as the reference.
- :mod:`.sanity` (torch): cascading model-parameter randomization (Adebayo et al. 2018) and class sensitivity.
- :mod:`.engine`, :mod:`.perimage`, :mod:`.records`, :mod:`.summary`: the audit run over a data set;
  :mod:`.outputs`, :mod:`.gallery`: its reports.
"""
