"""Evaluation metrics, evaluator plug-ins and the report (issue 6).

Modules: image_metrics (PSNR, SSIM, LPIPS), cpbd, identity (ACD), blink,
lip_sync (LSE-C/LSE-D), syncnet_v2_convert, wer, mouth, stats, report,
evaluators, unseen_faces (photos driven by held-out speech).
"""
