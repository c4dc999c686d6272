"""What is kept: generated images on disk, the settings inside each PNG, ZIP exports.

May import `runapi_ui.runapi` (the request and image types it stores) and itself.
"""
