-- Test stub of Lightroom's LrApplication: one active catalog in memory (photos by path; writes
-- only inside withWriteAccessDo, as Lightroom insists), the version, and a few develop presets.
local LrFileUtils = require "LrFileUtils"

local LrApplication = {}

local function newPreset(name, uuid, settings)
    return {
        name = name, uuid = uuid, settings = settings,
        getName = function(self) return self.name end,
        getUuid = function(self) return self.uuid end,
        getSetting = function(self) return self.settings end,
    }
end

local presets = {
    newPreset("Photonic Bright", "4C4B1A2E-0000-4000-8000-000000000001", { Exposure2012 = 1.0 }),
    newPreset("Photonic Dark", "4C4B1A2E-0000-4000-8000-000000000002", { Exposure2012 = -1.0 }),
}

local folder = {
    getName = function() return "User Presets" end,
    getDevelopPresets = function() return presets end,
}

local writing = false

local function requireWriteAccess(what)
    if not writing then
        error("LrCatalog:" .. what .. ": must be called from within withWriteAccessDo", 0)
    end
end

local function newPhoto(path)
    local photo = { path = path, develop = {}, presetsApplied = {} }
    function photo:getRawMetadata(key)
        if key == "path" then return self.path end
        return nil
    end
    function photo:applyDevelopPreset(preset)
        requireWriteAccess("applyDevelopPreset")
        self.presetsApplied[#self.presetsApplied + 1] = preset:getName()
        for k, v in pairs(preset:getSetting()) do self.develop[k] = v end
        return true
    end
    function photo:applyDevelopSettings(settings)
        requireWriteAccess("applyDevelopSettings")
        for k, v in pairs(settings) do self.develop[k] = v end
    end
    function photo:getDevelopSettings() return self.develop end
    return photo
end

local catalog = {
    path = os.getenv("PHOTONIC_STUB_CATALOG") or "/tmp/Stub Catalog.lrcat",
    photos = {},
    addedCount = 0,
}

function catalog:getPath() return self.path end

function catalog:findPhotoByPath(path) return self.photos[path] end

function catalog:addPhoto(path)
    requireWriteAccess("addPhoto")
    if LrFileUtils.exists(path) ~= "file" then
        error("The file \"" .. path .. "\" could not be imported (not found).", 0)
    end
    if self.photos[path] then error("The photo is already in the catalog.", 0) end
    self.photos[path] = newPhoto(path)
    self.addedCount = self.addedCount + 1
    return self.photos[path]
end

function catalog:withWriteAccessDo(_, fn)
    assert(not writing, "withWriteAccessDo cannot nest")
    writing = true
    local ok, err = pcall(fn)
    writing = false
    if not ok then error(err, 0) end
    return "executed"
end

function LrApplication.activeCatalog() return catalog end

function LrApplication.versionString() return "13.2" end

function LrApplication.versionTable() return { major = 13, minor = 2, revision = 0, build = 0 } end

function LrApplication.developPresetFolders() return { folder } end

function LrApplication.developPresetByUuid(uuid)
    for _, preset in ipairs(presets) do
        if preset:getUuid() == uuid then return preset end
    end
    return nil
end

return LrApplication
