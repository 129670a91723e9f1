--[[ Photonic's Lightroom Classic plug-in: connects to the photonic agent on this machine (the
Lightroom bridge, HTTP long-polling on 127.0.0.1) and develops and exports the photos of the
jobs it is given. ]]

return {
    LrSdkVersion = 10.0,
    LrSdkMinimumVersion = 10.0,
    LrToolkitIdentifier = "com.photonic.bridge",
    LrPluginName = "Photonic",
    LrPluginInfoUrl = "https://github.com/photonic/photonic",
    LrInitPlugin = "PluginInit.lua",
    LrShutdownPlugin = "PluginShutdown.lua",
    LrLibraryMenuItems = {
        { title = "Photonic: Connection status", file = "StatusMenu.lua" },
    },
    VERSION = { major = 1, minor = 0, revision = 0, build = 0 },
}
