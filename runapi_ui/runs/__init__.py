"""What a run is and who may start one.

Settings, the key policy and quotas, the run registry that outlives the browser, shared
runs for retried agent calls, Remix's upload step, the playground that ties them together,
and the visitor's history of runs. May import `runapi_ui.storage`, `runapi_ui.runapi`
and `runapi_ui.translations`, never the page or the agents.
"""
