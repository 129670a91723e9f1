-- Test stub of Lightroom's LrExportSession. A rendition's waitForRender() renders for real:
-- the venv's Python (Pillow) decodes the photo, applies the photo's Exposure2012 as a
-- brightness change, fits the long edge and encodes a new file in the destination folder.
-- $PHOTONIC_STUB_RENDER_DELAY_S makes each render that slow (waiting cooperatively, as a
-- Lightroom render lets other tasks run); $PHOTONIC_STUB_PYTHON names the interpreter.
local LrTasks = require "LrTasks"
local LrPathUtils = require "LrPathUtils"
local LrFileUtils = require "LrFileUtils"

local RENDER = [[
import sys
from PIL import Image, ImageEnhance
src, dst, fmt, long_edge, quality, exposure = sys.argv[1:7]
img = Image.open(src).convert("RGB")
img = ImageEnhance.Brightness(img).enhance(2 ** float(exposure))
if int(long_edge) > 0:
    img.thumbnail((int(long_edge), int(long_edge)))
opts = {"quality": int(quality)} if fmt == "JPEG" else {}
img.save(dst, fmt, **opts)
]]

local EXTENSIONS = { JPEG = "jpg", TIFF = "tif", PNG = "png" }

local function render(photo, settings, destination)
    local delay = tonumber(os.getenv("PHOTONIC_STUB_RENDER_DELAY_S") or "0") or 0
    local until_ = os.time() + delay
    while delay > 0 and os.time() < until_ do LrTasks.sleep(0.05) end
    local python = os.getenv("PHOTONIC_STUB_PYTHON") or "python3"
    local longEdge = settings.LR_size_doConstrain and settings.LR_size_maxWidth or 0
    local quality = math.floor((settings.LR_jpeg_quality or 0.9) * 100 + 0.5)
    local exposure = tonumber(photo:getDevelopSettings().Exposure2012) or 0
    local q = LrFileUtils.quote
    local command = table.concat({ q(python), "-c", q(RENDER), q(photo.path), q(destination),
        settings.LR_format, tostring(longEdge), tostring(quality), tostring(exposure) }, " ")
    if os.execute(command) ~= 0 then
        return false, "Lightroom could not render \"" .. photo.path .. "\"."
    end
    return true, destination
end

local function newRendition(photo, settings)
    local ext = EXTENSIONS[settings.LR_format]
    local folder = settings.LR_export_destinationPathPrefix
    local name = LrPathUtils.removeExtension(LrPathUtils.leafName(photo.path)) .. "." .. (ext or "")
    local rendition = { photo = photo, destinationPath = LrPathUtils.child(folder, name) }
    function rendition:waitForRender()
        if self.result then return unpack(self.result) end
        if not ext then
            self.result = { false, "The stub renders JPEG, TIFF and PNG, not " .. settings.LR_format }
        else
            LrFileUtils.createAllDirectories(folder)
            self.result = { render(self.photo, settings, self.destinationPath) }
        end
        return unpack(self.result)
    end
    return rendition
end

local function new(_, params)
    local settings = params.exportSettings
    assert(settings.LR_export_destinationType == "specificFolder", "stub exports to a folder")
    local session = { renditionList = {} }
    for i, photo in ipairs(params.photosToExport) do
        session.renditionList[i] = newRendition(photo, settings)
    end
    function session:countRenditions() return #self.renditionList end
    function session:renditions()
        local i = 0
        return function()
            i = i + 1
            if self.renditionList[i] then return i, self.renditionList[i] end
        end
    end
    function session:doExportOnCurrentTask()
        for _, r in self:renditions() do r:waitForRender() end
    end
    return session
end

return setmetatable({}, { __call = new })
