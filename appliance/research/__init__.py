"""The research export, as the appliance runs it: workspaces, the held-out set, dataset releases.

The release format (manifest, stores, targets) is the anonymizer's (``anonymizer.release``); this
package chooses the instances, de-identifies them with the appliance's secret, keeps the progress
in the database so that a release resumes, signs with the appliance's export key and audits.
"""
